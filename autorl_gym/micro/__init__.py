"""The embedded micro scenario: a tiny Qwen2 model and arithmetic word problems, built offline.

``ensure_micro_assets()`` builds (about a minute on a CPU, deterministic) and caches them under
``$AUTORL_GYM_CACHE/micro/arith-v{MICRO_VERSION}/``. Attributes are imported lazily so that
importing this package does not load torch.
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

# Bump whenever the data, tokenizer, model or pre-training change: it names the cache folder.
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
