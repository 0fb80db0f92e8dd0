"""What a grading process keeps from one grading to the next, so that a grading costs little more
than its generation.

A grading child forked from the warm server (:mod:`autorl_gym.grading.forkserver`) inherits, as a
private copy, whatever the server holds. Before it forks a child for a job the server calls
:func:`prepare`, which fills, once per scenario and base model:

* the imports a grading needs beyond the preloaded ones: the base model's architecture module,
  ``transformers``' model loading and generation code, its table of checkpoint renamings
  (about a thousand regular expressions compiled on first use), ``peft`` when the job is an
  adapter;
* the scenario's :class:`~autorl_gym.grading.scoring.Scorer` with the split's items loaded;
* the model the base's ``config.json`` describes, built on the meta device
  (:func:`autorl_gym.grading.checks.meta_model`), and the base model's tokenizer
  (:func:`autorl_gym.grading.backends.hf.load_tokenizer`).

Every entry is keyed by what it was made from: the scenario and assets as the job states them
and the identity (device, inode, size, mtime, ctime) of the split files and the base model's
files, or the bytes of the files themselves (configs, tokenizers); a changed file is a miss. Nothing
here runs a torch operation on data or starts a thread (:func:`prepare` checks that no work
but an import started one, and the server retires if so: GNU OpenMP's thread pool does not survive
a fork, and a child forked after a parallel region hangs).
Everything a grading decides (the submission checks, the weights it loads, its completions) is
decided in the child as before; only the work that does not depend on the submission is done
ahead. ``AUTORL_GYM_GRADING_WARM=0`` turns :func:`prepare` off.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from autorl_gym.grading.job import GradeJob
    from autorl_gym.grading.scoring import Scorer

SWITCH_VAR = "AUTORL_GYM_GRADING_WARM"
_KEPT = 8
_lock = threading.RLock()
V = TypeVar("V")


def enabled(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(SWITCH_VAR, "1") != "0"


class Memo:
    """A small keyed store (least recently used out first), safe across threads."""

    def __init__(self, kept: int = _KEPT):
        self.kept = kept
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], V]) -> V:
        with _lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()  # a failure (a refusal) is raised, never kept
        with _lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.kept:
                self.items.popitem(last=False)
        return value

    def clear(self) -> None:
        with _lock:
            self.items.clear()


def file_identity(paths: Iterable[Path]) -> tuple[tuple[str, int, int, int, int, int], ...]:
    """Who each file is: path, device, inode, size, mtime and ctime (no one sets a ctime back)."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((str(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def files_digest(folder: Path, names: Iterable[str]) -> str:
    """sha256 over the names and bytes of the files ``names`` of a host-owned ``folder`` (a
    missing one counted as missing)."""
    h = hashlib.sha256()
    for name in sorted(names):
        p = folder / name
        if p.is_file():
            data = p.read_bytes()
            h.update(f"{name}\0{len(data)}\0".encode())
            h.update(data)
        else:
            h.update(f"{name}\0missing\0".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- the scorer
_SCORERS = Memo()


def _scorer_key(job: GradeJob) -> tuple[Any, ...]:
    assets = job.assets
    files = [*assets.hidden_splits.values(), *sorted(assets.base_model_dir.iterdir())]
    return (json.dumps(job.scenario, sort_keys=True), assets.model_dump_json(), job.backend,
            file_identity(f for f in files if f.is_file()))


def scorer_for(job: GradeJob) -> Scorer:
    """The job's scenario validated and checked, and its scorer (kept for the same scenario,
    assets and unchanged files)."""

    def make() -> Scorer:
        from autorl_gym.core.scenario import Scenario
        from autorl_gym.grading.scoring import Scorer
        from autorl_gym.grading.validate import check_scenario

        scenario = Scenario.model_validate(job.scenario)
        check_scenario(scenario)
        return Scorer(scenario, job.assets, backend=job.backend)

    return _SCORERS.get(_scorer_key(job), make)


# --------------------------------------------------------------------------- ahead of a fork
_warmed: set[Any] = set()


class UnsafeToFork(RuntimeError):
    """Preparing started a thread: this process must not fork grading children any more."""


def threads() -> int:
    """Threads of this process, native ones included (Linux)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def prepare(job: GradeJob) -> None:
    """Do ahead, in this process, the work of ``job`` that does not depend on its submission
    (see the module's docstring). Raises what it could not do (a grading never depends on it),
    and :class:`UnsafeToFork` when anything but an import started a thread."""
    if not enabled():
        return
    key = (_scorer_key(job), job.split, job.info.kind)
    if key in _warmed:
        return
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    base = job.assets.base_model_dir
    # the imports first: some modules start a native thread of their own when imported
    importlib.import_module("transformers.modeling_utils")
    importlib.import_module("transformers.generation.utils")
    config = AutoConfig.from_pretrained(str(base))
    MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]  # noqa: B018 - imports the architecture's module
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    if job.info.kind == "lora":
        importlib.import_module("peft")
    from autorl_gym.grading.backends import hf
    from autorl_gym.grading.checks import meta_model

    before = threads()
    scorer = scorer_for(job)
    get_checkpoint_conversion_mapping(config.model_type)
    meta_model(base)  # on the meta device: no data, no thread pool
    scorer.ctx.items(job.split)
    if scorer.backend in ("hf", "vllm"):
        hf.load_tokenizer(base, base)
    if threads() != before:
        raise UnsafeToFork(f"preparing started {threads() - before} thread(s)")
    _warmed.add(key)


def prepare_file(job_file: str) -> None:
    from autorl_gym.grading.job import GradeJob

    prepare(GradeJob.model_validate_json(Path(job_file).read_text()))

