"""rdagent: the reference R&D loop, after RD-Agent, driven by any OpenAI-compatible chat model.

One iteration (an *experiment*):

1. **propose**: the model reads the task, the budget and the trace of past experiments and
   proposes a hypothesis (what to train, how, why) through a forced ``propose_hypothesis`` call;
2. **implement and run**: a fresh conversation in which the model uses the env's own tools
   (native tool calling with the env's schemas) to write code, run it and fix it;
3. **submit**: the experiment ends when the model submits its model folder;
4. **feedback**: the grader's answer and the run's logs become a :class:`FeedbackRecord`, with the
   model's reading of them (a forced ``record_feedback`` call);
5. **trace**: the experiment joins the trace, which knows the best so far.

The loop repeats until the budget says stop (time, steps, submissions, iterations), then
finishes with the best model. The agent watches the budget through ``info`` at reset and the
workspace's ``run_meta.json`` (the wall-clock deadline), clamps run timeouts to the time left,
keeps long observations to their head and tail, lets the ``openai`` client retry transient API
errors with backoff, and answers a malformed tool call by telling the model what was wrong
(nothing is run, no env step is spent). If the chat model stays unreachable, it finishes with
the best model so far instead of crashing.

The loop is a generator: it ``yield``s env tool calls and receives their observations, so the
code reads top to bottom like the R&D loop it is; ``act()`` just advances it.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from autorl_gym.core.durable import atomic_write_json
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.episode.tools import ToolCallError, parse_tool_call, tool_schemas

from . import prompts
from .llm import ChatLLM, LLMUnavailable
from .records import (
    Experiment,
    FeedbackRecord,
    Hypothesis,
    ModelFeedback,
    Trace,
    head_tail,
    read_exit_code,
    read_submission,
)

log = logging.getLogger(__name__)

Action = dict[str, Any]
Loop = Generator[Action, str, None]
M = TypeVar("M", bound=BaseModel)


def function_tool(name: str, description: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": schema}}


PROPOSE_TOOL = function_tool("propose_hypothesis", "Propose the next experiment.", Hypothesis)
FEEDBACK_TOOL = function_tool("record_feedback", "Record your reading of the experiment.", ModelFeedback)
_MIN_ACTION_S = 2.0  # seconds a further action needs beyond the reserve


class RDAgent:
    def __init__(self, llm_model: str = "gpt-4o-mini", llm_base_url: str | None = None,
                 llm_api_key: str | None = None, temperature: float | None = 0.2, max_iterations: int = 8,
                 max_actions_per_experiment: int = 16, max_obs_chars: int = 6000,
                 max_context_chars: int = 120_000, llm_max_retries: int = 6,
                 llm_timeout_s: float = 600, min_reserve_s: float = 15, reserve_fraction: float = 0.05,
                 max_invalid_calls: int = 4, structured_retries: int = 3, log_dir: str | None = None):
        self.max_iterations = max_iterations
        self.max_actions = max_actions_per_experiment
        self.max_obs_chars = max_obs_chars
        self.max_context_chars = max_context_chars
        self.min_reserve_s = min_reserve_s
        self.reserve_fraction = reserve_fraction
        self.max_invalid_calls = max_invalid_calls
        self.structured_retries = structured_retries
        self.log_dir_option = Path(log_dir) if log_dir else None
        self.llm = ChatLLM(llm_model, llm_base_url, llm_api_key, temperature, llm_max_retries,
                           llm_timeout_s)
        self.trace = Trace()
        self._gen: Loop | None = None

    # ------------------------------------------------------------------ agent protocol
    def reset(self, obs: str, info: dict[str, Any]) -> None:
        self.task = obs
        self.tools = info.get("tools") or tool_schemas()
        self.tool_names = [t["function"]["name"] for t in self.tools]
        self.workspace = Path(info["workspace"])
        results = info.get("results_dir")
        self.log_dir = self.log_dir_option or (Path(results) / "agent" if results else None)
        self.llm.log_path = self.log_dir / RunFolder.LLM_CALLS if self.log_dir else None
        budget = info.get("budget", {})
        self.budget_seconds, self.deadline = self._read_deadline(budget)
        self.reserve_s = max(self.min_reserve_s, self.reserve_fraction * self.budget_seconds)
        self.steps_left = int(budget.get("steps_left", 10**9))
        self.submissions_left = int(budget.get("submissions_left", 10**9))
        self.trace = Trace(task=obs, baseline=info.get("baseline"))
        self._model_asked_finish = False
        self._llm_down: str | None = None
        self._gen = self._loop()
        self._started = False

    def act(self, obs: str) -> Action:
        assert self._gen is not None, "reset() first"
        try:
            if not self._started:
                self._started = True
                action = next(self._gen)
            else:
                action = self._gen.send(obs)
        except StopIteration:
            action = self._finish_action()
        except Exception as e:  # noqa: BLE001 - the agent ends cleanly with its best model
            log.exception("rdagent loop failed")
            self.trace.stop_reason = f"agent error: {e.__class__.__name__}: {e}"
            action = self._finish_action()
        self.steps_left -= 1
        self._save_trace()
        return action

    # ------------------------------------------------------------------ the R&D loop
    def _loop(self) -> Loop:
        while (reason := self._stop_reason()) is None:
            index = len(self.trace.experiments) + 1
            best_before = self.trace.best_score()
            try:
                hypothesis = self._propose(index)
            except LLMUnavailable as e:
                self._llm_down = str(e)
                continue
            if hypothesis is None:
                self.trace.stop_reason = "the model gave no valid hypothesis"
                break
            exp = Experiment(index=index, hypothesis=hypothesis, started_s=self._elapsed())
            past = self.trace.summary()
            self.trace.experiments.append(exp)
            t0 = time.monotonic()
            try:
                yield from self._implement(exp, past)
            except LLMUnavailable as e:
                self._llm_down = str(e)
                exp.aborted = f"chat model unavailable: {e}"
            exp.duration_s = time.monotonic() - t0
            exp.feedback = self._feedback(exp, best_before)
            self._save_trace()
        else:
            self.trace.stop_reason = reason
        log.log(logging.WARNING if self._llm_down else logging.INFO, "rdagent finishes: %s",
                self.trace.stop_reason)
        yield self._finish_action()

    def _stop_reason(self) -> str | None:
        if self._llm_down:
            return f"chat model unavailable: {self._llm_down}"
        if self._model_asked_finish:
            return "the model called finish"
        if len(self.trace.experiments) >= self.max_iterations:
            return f"{self.max_iterations} experiments done (max_iterations)"
        if self.steps_left < 4:
            return f"{self.steps_left} tool calls left: too few for another experiment"
        if self.submissions_left < 1:
            return "no submissions left"
        done = [e.duration_s for e in self.trace.experiments if e.submission]
        needed = self.reserve_s + (0.5 * statistics.mean(done) if done else 0.0)
        if self.time_left() < needed:
            return f"{self.time_left():.0f} s left, less than the {needed:.0f} s another experiment needs"
        return None

    def _propose(self, index: int) -> Hypothesis | None:
        messages = [
            {"role": "system", "content": prompts.PROPOSE_SYSTEM},
            {"role": "user", "content": prompts.PROPOSE_USER.format(
                task=self.task, budget=self._budget_text(), trace=self.trace.summary(), index=index)},
        ]
        return self._structured(messages, PROPOSE_TOOL, Hypothesis, f"propose {index}")

    def _implement(self, exp: Experiment, past: str) -> Loop:
        h = exp.hypothesis
        output = f"output/v{exp.index}"
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompts.IMPLEMENT_SYSTEM},
            {"role": "user", "content": prompts.IMPLEMENT_USER.format(
                task=self.task, budget=self._budget_text(), trace=past, index=exp.index,
                hypothesis=h.hypothesis, method=h.method, plan=h.plan,
                reason=h.reason, output=output)},
        ]
        nudges = 0
        for _turn in range(self.max_actions):
            if (why := self._no_room_for_action()) is not None:
                exp.aborted = why
                return
            self._fit_context(messages)
            msg = self.llm.chat(messages, self.tools, purpose=f"implement {exp.index}",
                                deadline=self.deadline - self.reserve_s / 2)
            calls = list(msg.tool_calls or [])
            assistant: dict[str, Any] = {"role": "assistant", "content": msg.content}
            if calls:
                assistant["tool_calls"] = [{"id": c.id, "type": "function",
                                            "function": {"name": c.function.name,
                                                         "arguments": _history_arguments(
                                                             c.function.arguments)}}
                                           for c in calls]
            messages.append(assistant)
            if not calls:
                nudges += 1
                if nudges > self.max_invalid_calls:
                    exp.aborted = "the model stopped calling tools"
                    return
                messages.append({"role": "user", "content": prompts.NO_TOOL_NUDGE})
                continue
            for c in calls:
                action, problem = self._validate(c.function.name, c.function.arguments)
                if problem is None and (why := self._no_room_for_action()) is not None:
                    problem = f"not run: {why}"
                if problem is not None:
                    exp.invalid_calls += int(problem.startswith("error"))
                    content = problem
                elif action["tool"] == "finish":
                    self._model_asked_finish = True
                    exp.aborted = exp.aborted or "the model called finish"
                    content = "the loop will finish with the best model so far"
                else:
                    note = self._clamp_timeout(action)
                    obs = yield action
                    exp.actions.append(action)
                    self._observe(exp, action, obs)
                    content = note + head_tail(obs, self.max_obs_chars)
                messages.append({"role": "tool", "tool_call_id": c.id, "content": content})
            if self._model_asked_finish or (exp.submission and exp.submission.valid):
                return
            if exp.invalid_calls > self.max_invalid_calls:
                exp.aborted = f"{exp.invalid_calls} malformed tool calls"
                return
        exp.aborted = exp.aborted or f"no valid submission after {self.max_actions} model turns"

    def _feedback(self, exp: Experiment, best_before: float | None) -> FeedbackRecord:
        sub = exp.submission
        record = FeedbackRecord(
            experiment=exp.index, submission=sub, best_score_before=best_before,
            new_best=bool(sub and sub.valid and (best_before is None or sub.score > best_before)),
            last_exit_code=exp.last_exit_code, log_tail=head_tail(exp.last_run_output, 2000),
            aborted=exp.aborted)
        if self._llm_down or self.time_left() < self.reserve_s:
            record.model_feedback_error = "skipped: " + (self._llm_down or "no time left")
            return record
        h = exp.hypothesis
        if sub and sub.valid:
            result = (f"submission {sub.submission_id} ({sub.model_path}): score {sub.score:.2f} on the "
                      f"feedback split, baseline {sub.baseline:.2f}, improvement {sub.improvement:+.2f}")
        elif sub:
            result = f"submission of {sub.model_path} refused: {sub.error}"
        else:
            result = f"no submission: {exp.aborted}"
        messages = [
            {"role": "system", "content": prompts.FEEDBACK_SYSTEM},
            {"role": "user", "content": prompts.FEEDBACK_USER.format(
                index=exp.index, hypothesis=h.hypothesis, method=h.method, plan=h.plan, result=result,
                best_before=f"{best_before:.2f}" if best_before is not None else "none yet",
                exit_code=exp.last_exit_code, log=head_tail(exp.last_run_output, 3000) or "(no run)")},
        ]
        try:
            record.model_feedback = self._structured(messages, FEEDBACK_TOOL, ModelFeedback,
                                                     f"feedback {exp.index}")
            if record.model_feedback is None:
                record.model_feedback_error = "the model gave no valid feedback"
        except LLMUnavailable as e:
            self._llm_down = str(e)
            record.model_feedback_error = f"chat model unavailable: {e}"
        return record

    # ------------------------------------------------------------------ helpers
    def _structured(self, messages: list[dict[str, Any]], tool: dict[str, Any],
                                  model: type[M], purpose: str) -> M | None:
        """Ask for one forced function call and validate it; explain what was wrong and retry."""
        name = tool["function"]["name"]
        choice = {"type": "function", "function": {"name": name}}
        for _ in range(self.structured_retries):
            msg = self.llm.chat(messages, [tool], tool_choice=choice, purpose=purpose,
                                deadline=self.deadline)
            calls = list(msg.tool_calls or [])
            raw = calls[0].function.arguments if calls else (msg.content or "")
            try:
                if calls and calls[0].function.name != name:
                    raise ValueError(f"you called {calls[0].function.name!r}; call {name!r}")
                return model.model_validate_json(raw)
            except (ValueError, ValidationError) as e:
                problem = f"error: that was not a valid {name} call ({_explain(e)}); call {name} again"
            if calls:
                messages.append({"role": "assistant", "content": msg.content, "tool_calls": [
                    {"id": calls[0].id, "type": "function",
                     "function": {"name": calls[0].function.name,
                                  "arguments": _history_arguments(raw)}}]})
                messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": problem})
            else:
                messages.append({"role": "assistant", "content": raw})
                messages.append({"role": "user", "content": problem})
        return None

    def _validate(self, name: str, arguments: str) -> tuple[Action, None] | tuple[None, str]:
        """A model's tool call as an env action, or the message that tells it what was wrong."""
        if name not in self.tool_names:
            return None, (f"error: unknown tool {name!r}; the tools are {', '.join(self.tool_names)}. "
                          "Nothing was run.")
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError as e:
            return None, (f"error: the arguments of your {name} call are not valid JSON ({e.msg} at "
                          f"character {e.pos}: ...{arguments[max(0, e.pos - 40):e.pos + 20]!r}). Nothing "
                          f"was run. Call {name} again with a complete JSON object.")
        if not isinstance(args, dict):
            return None, f"error: the arguments of {name} must be a JSON object. Nothing was run."
        try:
            call = parse_tool_call({**args, "tool": name})
        except ToolCallError as e:
            return None, f"error: {e}. Nothing was run."
        return call.model_dump(exclude_none=True), None

    def _clamp_timeout(self, action: Action) -> str:
        if action["tool"] != "run":
            return ""
        room = max(1.0, self.time_left() - self.reserve_s)
        asked = action.get("timeout_s")
        if asked is None or asked > room:
            action["timeout_s"] = round(room, 1)
            if asked is not None:
                return f"(timeout_s lowered from {asked:.0f} to {room:.0f} s to stay inside the budget)\n"
        return ""

    def _observe(self, exp: Experiment, action: Action, obs: str) -> None:
        if action["tool"] == "run":
            exp.last_exit_code = read_exit_code(obs)
            exp.last_run_output = obs
        elif action["tool"] == "submit":
            exp.submission = read_submission(obs, action["model_path"])
            if exp.submission.submissions_left is not None:
                self.submissions_left = exp.submission.submissions_left

    def _no_room_for_action(self) -> str | None:
        # a new action needs a model call and a command on top of the reserve kept for finish; a
        # run whose timeout was clamped to the room left ends here, not one call later
        if self.time_left() < self.reserve_s + _MIN_ACTION_S:
            return f"the time budget is almost spent ({self.time_left():.0f} s left)"
        if self.steps_left <= 1:
            return "the step budget is spent (one call is kept for finish)"
        return None

    def _fit_context(self, messages: list[dict[str, Any]]) -> None:
        """Shrink the oldest tool results and file contents until the conversation fits."""
        def size() -> int:
            return sum(len(str(m.get("content") or "")) + len(json.dumps(m.get("tool_calls") or []))
                       for m in messages)

        for m in messages[2:-4]:
            if size() <= self.max_context_chars:
                return
            if m["role"] == "tool" and len(m["content"]) > 800:
                m["content"] = head_tail(m["content"], 600)
            for c in m.get("tool_calls") or []:
                fn = c["function"]
                if len(fn["arguments"]) > 800:
                    try:
                        args = json.loads(fn["arguments"])
                        args = {k: head_tail(v, 400) if isinstance(v, str) else v for k, v in args.items()}
                        fn["arguments"] = json.dumps(args)
                    except json.JSONDecodeError:
                        fn["arguments"] = json.dumps({"unparsed": head_tail(fn["arguments"], 400)})

    def _finish_action(self) -> Action:
        best = self.trace.best()
        if best is not None and best.submission is not None:
            self.trace.finished_with = best.submission.model_path
            return {"tool": "finish", "model_path": best.submission.model_path}
        return {"tool": "finish"}

    def _read_deadline(self, budget: dict[str, Any]) -> tuple[float, float]:
        """(budget seconds, deadline as a Unix time) from run_meta.json, else from ``info``."""
        try:
            meta = json.loads((self.workspace / "run_meta.json").read_text())
            seconds = float(meta["budget_seconds"])
            return seconds, float(meta["start_timestamp"]) + seconds
        except (OSError, KeyError, ValueError, TypeError) as e:
            log.warning("run_meta.json unreadable (%s); using the budget from info", e)
            left = float(budget.get("seconds_left", 3600))
            return left + float(budget.get("elapsed_s", 0.0)), time.time() + left

    def time_left(self) -> float:
        return self.deadline - time.time()

    def _elapsed(self) -> float:
        return self.budget_seconds - self.time_left()

    def _budget_text(self) -> str:
        done = [e.duration_s for e in self.trace.experiments if e.duration_s]
        past = f" Past experiments took {statistics.mean(done):.0f} s on average." if done else ""
        return (f"{self.time_left():.0f} s of wall-clock time left of {self.budget_seconds:.0f} s "
                f"(your own thinking counts); {self.steps_left} tool calls and {self.submissions_left} "
                f"submissions left. {self.reserve_s:.0f} s are kept in reserve to finish.{past}")

    def _save_trace(self) -> None:
        if self.log_dir is not None:
            try:
                atomic_write_json(self.log_dir / "trace.json", self.trace.model_dump(mode="json"))
            except OSError as e:
                log.warning("could not save the trace: %s", e)


def _history_arguments(raw: str | None) -> str:
    """Arguments as echoed back in the conversation: always a JSON object, since some servers
    (vLLM, for one) parse the history's arguments and refuse the request if they are broken."""
    try:
        if isinstance(json.loads(raw or "{}"), dict):
            return raw or "{}"
    except json.JSONDecodeError:
        pass
    return json.dumps({"unparsed_arguments": head_tail(raw or "", 2000)})


def _explain(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                         for err in e.errors())[:600]
    return str(e)[:600]
