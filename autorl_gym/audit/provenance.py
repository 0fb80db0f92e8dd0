"""The provenance stamp every score carries: what measured it.

:class:`Provenance` is written as ``provenance.json`` in the results folder, inside
``feedback.json`` (``provenance``) and, as its :attr:`~Provenance.score_key`, on every submission
record and leaderboard row. Fields split in two: those that change a score (:data:`SCORE_FIELDS`:
the scenario file, the hidden splits, the base model's weights, the grader backend, the versions
of the libraries that generate and score, the judge and its prompt, the decoding settings) and
those that only say where and by what it ran (package version and commit, sandbox kind,
hardware). The leaderboard never averages runs whose score keys differ.

The hardware is not a score field: the micro scenarios grade on CPU with greedy decoding, and a
GPU backend's nondeterminism is what ``verify``'s tolerance is for.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autorl_gym.core.durable import file_digest
from autorl_gym.core.run_folder import RunFolder

PROVENANCE_FILE = RunFolder.PROVENANCE
LIBRARIES = ("torch", "transformers", "vllm", "lm_eval", "peft", "safetensors")
SCORE_FIELDS = ("scenario", "scenario_file_hash", "split_digests", "base_model_hash",
                "grader_backend", "grader_settings", "libraries", "judge", "decoding")


class Provenance(BaseModel):
    package_version: str
    git_commit: str | None = Field(None, description="the package's commit, when run from a checkout")
    scenario: str
    scenario_file_hash: str | None
    split_digests: dict[str, str]
    base_model_hash: str
    grader_backend: str
    grader_settings: dict[str, Any] = {}
    libraries: dict[str, str | None] = Field(description="versions; None when not installed")
    judge: dict[str, Any] | None = Field(None, description="judge model, backend and prompt hash")
    decoding: dict[str, Any]
    sandbox: str | None = None
    hardware: dict[str, Any] = {}

    @property
    def score_key(self) -> str:
        """A digest of the fields that change a score (runs with equal keys may be averaged)."""
        fields = self.model_dump(include=set(SCORE_FIELDS), mode="json")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: Provenance) -> list[str]:
        """The score fields in which two stamps differ (their names, with both values if short)."""
        out = []
        a, b = self.model_dump(mode="json"), other.model_dump(mode="json")
        for f in SCORE_FIELDS:
            if a.get(f) != b.get(f):
                out.append(_describe(f, a.get(f), b.get(f)))
        return out


def _describe(field: str, a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        return f"{field} ({', '.join(f'{k}: {a.get(k)} vs {b.get(k)}' for k in keys)[:300]})"
    return f"{field} ({str(a)[:60]} vs {str(b)[:60]})"


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-") if name == "lm_eval" else name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    from autorl_gym.core.paths import REPO_DIR

    if not (REPO_DIR / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                            "system": platform.system(), "python": platform.python_version()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpus"] = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - the stamp never fails a run
        pass
    return info


def judge_record(scenario: Any) -> dict[str, Any] | None:
    spec = getattr(scenario, "judge", None)
    if spec is None:
        return None
    record: dict[str, Any] = {"backend": spec.backend, "model": spec.on_host().model,
                              "temperature": spec.temperature, "max_tokens": spec.max_tokens}
    for field in ("prompt", "match_prompt"):
        name = getattr(spec, field)
        try:
            from autorl_gym.judge.prompts import get_prompt

            text = repr(vars(get_prompt(name)))
            record[f"{field}_hash"] = hashlib.sha256(text.encode()).hexdigest()[:16]
        except Exception:  # noqa: BLE001 - a prompt that cannot load is named, not hashed
            record[f"{field}_hash"] = None
        record[field] = name
    return record


def stamp(scenario: Any, grader: Any, sandbox: str | None = None) -> Provenance:
    """The stamp of scores measured by ``grader`` (a grading.core.Grader) on ``scenario``."""
    from autorl_gym import __version__
    from autorl_gym.grading.grader import _SPEED_ONLY

    ctx = grader.ctx
    digests = {}
    for split in ("dev", "test"):
        if split in grader.assets.hidden_splits:
            digests[split] = ctx.family.split_digest(ctx, split)
    source = getattr(scenario, "source_file", None)
    return Provenance(
        package_version=__version__, git_commit=git_commit(), scenario=scenario.id,
        scenario_file_hash=file_digest(Path(source)) if source and Path(source).is_file() else None,
        split_digests=digests, base_model_hash=grader.base_hash,
        grader_backend=grader.backend_label,
        grader_settings=scenario.grader.model_dump(mode="json", exclude=_SPEED_ONLY),
        libraries=library_versions(), judge=judge_record(scenario),
        decoding=scenario.protocol.model_dump(mode="json"), sandbox=sandbox, hardware=hardware())


def read_provenance(results_dir: Path) -> Provenance | None:
    try:
        return Provenance.model_validate_json((Path(results_dir) / PROVENANCE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
