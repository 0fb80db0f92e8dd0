"""Canary strings: one per scenario split, derived from the scenario id, the split name and the
split's digest, and planted beside the hidden split (``<split>.canary`` in the folder that holds
it). The graded model never sees it (prompts are built from the split's items only), so it
changes no score; a copy of the hidden folder anywhere the audit looks is proof of a leak."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from autorl_gym.audit.normalise import normalise

log = logging.getLogger(__name__)

PREFIX = "AUTORL-GYM-CANARY"


def canary(scenario_id: str, split: str, split_digest: str) -> str:
    """The canary of one hidden split (the same wherever and whenever it is computed)."""
    h = hashlib.sha256(f"{scenario_id}\0{split}\0{split_digest}".encode()).hexdigest()[:32]
    return f"{PREFIX}-{h}"


def canary_path(split_path: Path, split: str) -> Path:
    """Where the canary of ``split`` is planted: beside the split's file or folder."""
    return split_path.parent / f"{split}.canary"


def plant(split_path: Path, split: str, value: str) -> bool:
    """Write the canary beside the split (once; best effort: a read-only store keeps its splits
    as they are, and the audit still knows the canary). True when it is there."""
    path = canary_path(split_path, split)
    text = (f"{value}\nThis file marks a hidden split of autorl-gym. Its presence anywhere an agent "
            f"could read or train on is proof that the hidden split leaked.\n")
    try:
        if path.is_file() and value in path.read_text(encoding="utf-8", errors="replace"):
            return True
        path.write_text(text, encoding="utf-8")
        return True
    except OSError as e:
        log.debug("canary not planted at %s: %s", path, e)
        return False


def normalised(value: str) -> str:
    """The canary as the scan sees it after normalisation (re-cased, re-punctuated copies match)."""
    return normalise(value)
