"""Budget-aware external agents: ``reprompt: true`` in agent.yaml (or ``--agent-option
reprompt=true``) resumes a command-line agent that stopped early.

Coding CLIs tend to stop long before their budget is spent. With ``reprompt`` on, when the
agent's command exits while the run is still open and at least ``reprompt_min_remaining_s`` of
the budget is left (by the grading server's clock, from the ledger: nothing the agent can
write), the runner starts the agent's ``resume`` command (its CLI's own continue flag, with the
session kept in the workspace) or, without one, its ``start`` command again, in the same
workspace, with ``AGENT_PROMPT`` set to a short message: the time left and the best score so
far. At most ``reprompt_max_resumes`` resumes.

Each execution of the command is a *turn*: ``turns.jsonl`` in the results folder (one line per
turn, :class:`TurnRecord`), the trajectory's steps carry their ``turn``, and the report shows a
table of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.core.sandbox import ExecResult
from autorl_gym.core.turns import TurnRecord

__all__ = ["Decision", "RepromptSettings", "TurnRecord", "decide", "resume_message"]

#: the peers' threshold: resume while at least 30 minutes are left
DEFAULT_MIN_REMAINING_S = 1800.0
DEFAULT_MAX_RESUMES = 3
#: where a reprompted CLI keeps its sessions (HOME), so that its continue flag finds them: the
#: sandbox's own HOME is emptied after every command
STATE_HOME = ".cli/home"


class RepromptSettings(BaseModel):
    """The reprompt fields of agent.yaml, checked (``--agent-option`` values too)."""

    model_config = ConfigDict(extra="forbid")

    reprompt: bool = Field(False, description="resume the agent when it stops early")
    reprompt_min_remaining_s: float = Field(
        DEFAULT_MIN_REMAINING_S, gt=0, le=30 * 24 * 3600,
        description="resume only while at least this many seconds of the budget are left")
    reprompt_max_resumes: int = Field(DEFAULT_MAX_RESUMES, ge=1, le=100,
                                      description="at most this many resumes per run")


#: the option names ``--agent-option`` may set for the runner rather than the agent's environment
OPTION_NAMES = tuple(RepromptSettings.model_fields)


class Decision(BaseModel):
    resume: bool
    why: str


def decide(settings: RepromptSettings, run_status: str, remaining_s: float, resumes_done: int,
           res: ExecResult | None) -> Decision:
    """Whether to resume the agent after its command ended (``res``), the run being
    ``run_status`` with ``remaining_s`` left by the grading server's clock."""
    if not settings.reprompt:
        return Decision(resume=False, why="reprompt is off")
    if run_status != "active":
        return Decision(resume=False, why=f"the run is {run_status}")
    if res is None:
        return Decision(resume=False, why="the agent's command could not run")
    if res.timed_out:
        return Decision(resume=False, why="the agent's command ran until the budget was spent")
    if resumes_done >= settings.reprompt_max_resumes:
        return Decision(resume=False, why=f"{resumes_done} resumes done, the most allowed "
                                          f"(reprompt_max_resumes={settings.reprompt_max_resumes})")
    if remaining_s < settings.reprompt_min_remaining_s:
        return Decision(resume=False, why=f"{remaining_s:.0f} s left, under the minimum for a "
                                          f"resume ({settings.reprompt_min_remaining_s:.0f} s)")
    return Decision(resume=True, why=f"the agent stopped with {remaining_s:.0f} s left")


def resume_message(remaining_s: float, budget_s: float, best: dict[str, Any] | None,
                   submissions_used: int, max_submissions: int, instructions_file: str) -> str:
    """What a resumed agent is told: the time left and the best score so far (feedback split)."""
    if best is None:
        score = "No submission has been graded yet."
    else:
        score = (f"Your best score so far on the feedback split is {best['score']:.4g} "
                 f"(baseline {best['baseline']:.4g}, {best['improvement']:+.4g}; "
                 f"{best['model_path']}).")
    return (f"You stopped, but the run is still open: {remaining_s:.0f} s of the {budget_s:.0f} s "
            f"budget are left (`autorl-timer` shows the time left). {score} "
            f"{submissions_used} of {max_submissions} submissions used. Keep improving the model "
            f"within the time left, submit better models, and finish the run with curl when you "
            f"are done ({instructions_file} has the commands).")
