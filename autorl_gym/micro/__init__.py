"""The embedded micro scenario: a tiny Qwen2 model and arithmetic word problems.

``ensure_micro_assets()`` installs the shipped model and tokenizer (``micro/artifacts/``, every
file checked against its published sha256, see :mod:`autorl_gym.micro.shipped`) and the seeded
splits under ``$AUTORL_GYM_CACHE/micro/arith-v{MICRO_VERSION}/``, in about a second; the build
(``build_micro_assets``) makes the next version. Attributes are imported lazily so that importing
this package does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autorl_gym.micro.build import (
        PROMPT_TEMPLATE,
        STOP_STRINGS,
        MicroAssets,
        MicroManifest,
        build_micro_assets,
        ensure_micro_assets,
        load_split,
    )

# Bump whenever the data, tokenizer, model or pre-training change: it names the shipped artifact
# (arith-v1) and its cache folder; a new version is a new scenario id, never a change of -v0.
MICRO_VERSION = 1

__all__ = [
    "MICRO_VERSION",
    "PROMPT_TEMPLATE",
    "STOP_STRINGS",
    "MicroAssets",
    "MicroManifest",
    "build_micro_assets",
    "ensure_micro_assets",
    "load_split",
]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "MICRO_VERSION":
        from autorl_gym.micro import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
