"""An external agent's command, run as one turn or, with ``reprompt`` on, resumed turn after turn
(:mod:`autorl_gym.agents.reprompt`): the decision is taken here, on the host, from the grading
server's own clock and ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autorl_gym.agents.reprompt import STATE_HOME, TurnRecord, decide, resume_message
from autorl_gym.agents.spec import AgentSpec
from autorl_gym.agents.transcript import transcript_size
from autorl_gym.core.durable import append_jsonl
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.sandbox import ExecResult, Sandbox
from autorl_gym.runtime.process import shell_exports
from autorl_gym.server.bodies import RunOut
from autorl_gym.server.client import GradingClient


def best_submission(run: RunOut) -> dict[str, Any] | None:
    """The best graded submission so far (feedback split), as the resume message shows it."""
    graded = [s for s in run.submissions if s.status == "done" and s.score is not None]
    if not graded:
        return None
    best = max(graded, key=lambda s: (s.score, -s.submission_id))
    return {"score": best.score, "baseline": best.baseline or 0.0,
            "improvement": best.improvement or 0.0, "model_path": best.model_path}


class TurnLoop:
    """Runs the agent's command in ``box`` until it should not be resumed; ``run()`` returns how
    the last turn ended. ``prefix`` goes before the exports, ``exports`` are the command's
    variables (AGENT_PROMPT is replaced on a resume), ``set_turn`` tells the run's recorder which
    turn its steps belong to."""

    def __init__(self, spec: AgentSpec, box: Sandbox, client: GradingClient, run_id: str,
                 workspace: Path, results: Path, prefix: str, exports: dict[str, str],
                 set_turn: Callable[[int], None], instructions_file: str = "the instructions",
                 transcript: str | None = None):
        assert spec.start is not None
        self.spec, self.box, self.client, self.run_id = spec, box, client, run_id
        self.workspace, self.results, self.prefix = workspace, results, prefix
        self.exports, self.set_turn = dict(exports), set_turn
        self.instructions_file, self.transcript = instructions_file, transcript
        self.turns: list[TurnRecord] = []

    def command(self, body: str, exports: dict[str, str]) -> str:
        home = (f"export HOME=\"$WORKSPACE/{STATE_HOME}\"; mkdir -p \"$HOME\"; "
                if self.spec.reprompt else "")
        return (self.prefix + shell_exports(exports, f"agent {self.spec.name} options") + home
                + body)

    def run(self) -> ExecResult | None:
        run = self.client.run(self.run_id)
        if not self.spec.reprompt:  # one turn, recorded as before (no turns.jsonl)
            return self.box.exec(self.command(self.spec.start or "", self.exports),
                                 timeout_s=max(1.0, run.time.remaining_s))
        prompt = self.exports.get("AGENT_PROMPT", "")
        body, kind = self.spec.start or "", "start"
        while True:
            n = len(self.turns) + 1
            record = self._begin(n, kind, prompt, run)
            exports = {**self.exports, "AGENT_PROMPT": prompt, "AGENT_TURN": str(n)}
            res = self.box.exec(self.command(body, exports), timeout_s=max(1.0, run.time.remaining_s))
            run = self.client.run(self.run_id)
            decision = decide(self.spec, run.status, run.time.remaining_s, n - 1, res)
            self._end(record, res, run, decision.why)
            if not decision.resume:
                return res
            prompt = resume_message(run.time.remaining_s, run.time.budget_seconds, best_submission(run),
                                    len(run.submissions), run.max_submissions, self.instructions_file)
            body, kind = self.spec.resume or self.spec.start or "", "resume"

    def _begin(self, n: int, kind: str, prompt: str, run: RunOut) -> TurnRecord:
        self.set_turn(n)
        best = best_submission(run)
        offset = (transcript_size(self.workspace, self.transcript, self.results)
                  if self.transcript else None)
        record = TurnRecord(turn=n, kind=kind, prompt=prompt, started_at=datetime.now(UTC),
                            elapsed_start_s=run.time.elapsed_s, remaining_start_s=run.time.remaining_s,
                            best_score_start=best["score"] if best else None,
                            submissions=len(run.submissions), transcript_offset=offset)
        return record

    def _end(self, record: TurnRecord, res: ExecResult | None, run: RunOut, why: str) -> None:
        record.ended_at = datetime.now(UTC)
        record.duration_s = round(res.duration_s, 3) if res is not None else None
        record.exit_code = res.exit_code if res is not None else None
        record.timed_out = bool(res and res.timed_out)
        record.submissions = len(run.submissions) - record.submissions
        record.next = why
        self.turns.append(record)
        append_jsonl(self.results / RunFolder.TURNS, record.model_dump(mode="json"))
