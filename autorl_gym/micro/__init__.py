"""The embedded micro scenarios: tiny Qwen2 models and their data (arithmetic word problems,
TextWorld games, a micro WebShop and a micro search world).

``build.ensure_micro_assets()`` installs the shipped model and tokenizer (``micro/artifacts/``,
every file checked against its published sha256, see :mod:`autorl_gym.micro.shipped`) and the
seeded splits under ``$AUTORL_GYM_CACHE/micro/arith-v{MICRO_VERSION}/``, in about a second; the
build (``build.build_micro_assets``) makes the next version. ``micro:<name>`` base models are
registered as a model source by :mod:`autorl_gym.micro.sources`.
"""
