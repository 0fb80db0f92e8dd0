"""LLM judges for tasks a rule cannot grade: pairwise preference against a reference
(AlpacaEval's length-controlled win rate) and answer correctness (judged question answering).

``make_judge(spec)`` builds the scenario's judge (``judge:`` block, :class:`JudgeSpec`) from a
registered backend; :mod:`autorl_gym.judge.winrates` turns pairwise verdicts into win rates.
Grader side only: nothing here runs in, or is configured from, the sandbox.
"""

from autorl_gym.judge.backends import judge_backend_names, make_judge_backend, register_judge_backend
from autorl_gym.judge.base import Comparison, Judge, JudgeBackend, JudgeUnavailable, Match, Reply, Verdict
from autorl_gym.judge.judge import CachedJudge, JudgeStats, make_judge

__all__ = [
    "CachedJudge", "Comparison", "Judge", "JudgeBackend", "JudgeStats",
    "JudgeUnavailable", "Match", "Reply", "Verdict", "judge_backend_names", "make_judge",
    "make_judge_backend", "register_judge_backend",
]
