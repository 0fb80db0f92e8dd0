"""HumanEval (``task_family: humaneval``, ``AutoRL-HumanEval-v0``): Python function completion
scored by pass@1, every completion run with its tests in a fresh sandbox.

``data`` (loading and the split rule), ``executor`` and ``harness`` (the sandboxed runs),
``lm_eval_task`` (lm-eval's humaneval task pinned to local files), ``family`` (the registered
:class:`~autorl_gym.tasks.humaneval.family.HumanEvalTask`)."""

from autorl_gym.tasks.humaneval.family import HumanEvalTask

__all__ = ["HumanEvalTask"]
