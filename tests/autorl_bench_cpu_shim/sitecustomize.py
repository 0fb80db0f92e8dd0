"""A hardware shim, not a change to the agent: AutoRL-Bench's example agent is written for a GPU
(``GRPOConfig(bf16=True)``), which transformers refuses on a machine without one unless
``use_cpu`` is set. On a machine with no CUDA device, this sitecustomize (put on the agent's
PYTHONPATH by tests/test_autorl_bench.py, beside the agent's unmodified files) sets ``use_cpu`` on
every TrainingArguments, so the same script trains in bf16 autocast on the CPU. With a GPU it
does nothing.

For the test suite's time, ``AUTORL_BENCH_SHIM_MAX_STEPS`` (when set) also caps every training's
``max_steps``: the example's GRPO loop, its checkpoints and its submissions run as written, for
fewer steps."""

import importlib.abc
import importlib.machinery
import os
import sys


def _patch(module):
    cls = getattr(module, "TrainingArguments", None)
    if cls is None or getattr(cls, "_cpu_shim", False):
        return
    original = cls.__post_init__

    def __post_init__(self, *args, **kwargs):
        import torch

        if not torch.cuda.is_available():
            self.use_cpu = True
        cap = int(os.environ.get("AUTORL_BENCH_SHIM_MAX_STEPS", "0") or 0)
        if cap > 0 and (self.max_steps is None or self.max_steps < 0 or self.max_steps > cap):
            print(f"[cpu shim] max_steps {self.max_steps} -> {cap}", file=sys.stderr)
            self.max_steps = cap
        original(self, *args, **kwargs)

    cls.__post_init__ = __post_init__
    cls._cpu_shim = True
    print("[cpu shim] no CUDA device: TrainingArguments(use_cpu=True)", file=sys.stderr)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches transformers.training_args when it is first imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers.training_args":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _Finder())
