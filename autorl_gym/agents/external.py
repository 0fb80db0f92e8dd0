"""External agents: ``agents/<name>/agent.yaml`` with a ``start`` command instead of a class.

``autorl-gym run --agent <name>`` starts a grading server in this process (on a private unix
socket, bridged into the sandbox as ``GRADING_SERVER_URL=http://127.0.0.1:8765``), creates a run
through it, copies the agent's folder into the workspace's ``code/`` and runs the start command
inside the run's sandbox with ``TASK``, ``BASE_MODEL``, ``MODEL_PATH``, ``DATA_PATH``,
``OUTPUT_DIR``, ``WORKSPACE``, ``GRADING_SERVER_URL``, ``RUN_ID`` and ``RUN_TOKEN`` set. The agent
submits and finishes over HTTP; if it has not finished when its command ends (or the budget is
spent), the run is finished for it. The results folder is the same as a Python agent's, plus
``agent_output.txt`` (the command's output).

A command-line coding agent (a ``cli:`` block in agent.yaml) also gets its CLI from the cache,
its instructions file and the run's LLM gateway (:mod:`autorl_gym.agents.cli_agent`).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from autorl_gym.agents.cli_agent import CLIRun, LLMRequest, LLMUsage
from autorl_gym.agents.spec import AgentSpec
from autorl_gym.agents.timer import install_timer, with_timer
from autorl_gym.agents.timer import path_prefix as timer_path
from autorl_gym.agents.turns import TurnLoop
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.sandbox import ExecResult, Sandbox
from autorl_gym.runtime.process import shell_exports
from autorl_gym.runtime.serving import ServerThread, bind_tcp, bind_unix
from autorl_gym.sandbox.registry import make_sandbox, sandbox_isolated
from autorl_gym.server import SANDBOX_PORT, ServerSettings, create_app
from autorl_gym.server.bodies import RunCreated, RunOut, SubmissionOut
from autorl_gym.server.client import GradingAPIError, GradingClient


class ExternalRun(RunOut):
    """An external agent's run as the API shows it at the end, and how its command ended."""

    agent_exit_code: int | None = None
    llm_usage: LLMUsage | None = None


def run_external_agent(spec: AgentSpec, folder: Path, scenario_id: str, *, sandbox: str = "local",
                       results_dir: Path = Path("results"), workspace_root: Path = Path("workspace"),
                       budget_seconds: float | None = None, console: Console | None = None,
                       progress: bool = True, agent_env: dict[str, str] | None = None,
                       llm: LLMRequest | None = None, host_env: dict[str, str] | None = None,
                       compat_scoring: str = "autorl-gym") -> ExternalRun:
    """Run one episode of an external agent; returns the run as ``GET /runs/{id}`` shows it,
    with the exit code of the agent's command.

    The agent's ``options`` (agent.yaml), then ``agent_env``, are exported to its start command
    as environment variables. A CLI agent's model is ``llm`` (the key read from ``host_env``,
    default this process's environment).
    """
    assert spec.start is not None
    if spec.protocol == "autorl-bench" and not sandbox_isolated(sandbox):
        raise ValueError(f"AutoRL-Bench agent {spec.name!r} speaks to /submit with no token: it "
                         f"needs a sandbox that isolates (local or docker), not {sandbox!r}, so "
                         "the grading server knows its run from the bridge")
    console = console or Console()
    tmp = Path(tempfile.mkdtemp(prefix="autorl-grading-"))
    try:  # fails early: the CLI not installed, no key on the host, no driver model
        cli_run = (CLIRun(spec, llm or LLMRequest(), tmp, sandbox_isolated(sandbox), host_env)
                   if spec.cli is not None else None)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    host_sock = tmp / "host.sock"  # this process's side (it creates the run)
    sockets = [bind_unix(host_sock)]
    if sandbox_isolated(sandbox):  # a private network: the run's own socket is bridged in
        url, bridge = f"http://127.0.0.1:{SANDBOX_PORT}", tmp / "bridges"
    else:  # no sandbox: the agent runs on the host and reaches a loopback port directly
        sockets.append(bind_tcp("127.0.0.1", 0))
        url, bridge = f"http://127.0.0.1:{sockets[-1].getsockname()[1]}", None
    settings = ServerSettings(ledger=Path(results_dir) / "ledger.sqlite",
                              workspace_root=Path(workspace_root), results_dir=Path(results_dir),
                              sandbox=sandbox, default_scenario=scenario_id, bridge_dir=bridge,
                              sandbox_url=url, progress=progress, compat_scoring=compat_scoring)
    app = create_app(settings)
    server = ServerThread(app, sockets)
    server.start()
    client = GradingClient(uds=host_sock, timeout=None)
    try:
        with console.status("preparing the run (base model, baseline)"):
            try:
                created = client.create_run(scenario_id, agent=spec.name, budget_seconds=budget_seconds)
            except GradingAPIError as e:
                raise RuntimeError(f"could not create the run: {e}") from e
        run_id, ws = created.run_id, Path(created.workspace)
        console.print(f"[dim]workspace[/] {ws}")
        console.print(f"[dim]run[/] {run_id}  [dim]grading server in the sandbox[/] {url}")
        shutil.copytree(folder, ws / "code", dirs_exist_ok=True)  # links followed: real files
        for extra in spec.extra_files(folder):
            shutil.copyfile(extra, ws / "code" / extra.name)

        box, prefix, exports = _agent_box(spec, app.state.service, created, sandbox, cli_run,
                                          agent_env, tmp, console)
        service = app.state.service
        turns = TurnLoop(spec, box, client, run_id, ws, Path(created.results_dir), prefix, exports,
                         set_turn=lambda n: _set_turn(service, run_id, n),
                         instructions_file=spec.cli.instructions_file if spec.cli else "instructions.md",
                         transcript=spec.cli.transcript if spec.cli else None)
        result: dict[str, Any] = {}

        def agent() -> None:
            try:
                result["exec"] = turns.run()
            except Exception as e:  # noqa: BLE001 - the run still ends, saying why
                result["error"] = f"{e.__class__.__name__}: {e}"

        t = threading.Thread(target=agent, name=f"agent-{spec.name}", daemon=True)
        t0 = time.monotonic()
        t.start()
        shown: set[int] = set()
        with console.status(f"agent {spec.name} running: {spec.start}") as status:
            while t.is_alive():
                t.join(timeout=1.0)
                run = client.run(run_id)
                _show(console, run, shown, ended_only=True)
                status.update(f"agent {spec.name} running ({time.monotonic() - t0:.0f} s, "
                              f"{run.time.remaining_s:.0f} s left): {spec.start}")
        res = result.get("exec")
        box.close()
        run = client.run(run_id)
        _show(console, run, shown, ended_only=False)
        if res is not None:
            (Path(run.results_dir) / RunFolder.AGENT_OUTPUT).write_text(res.output, encoding="utf-8")
            console.print(f"[dim]agent command ended[/] exit code {res.exit_code}"
                          + (" (timed out)" if res.timed_out else "") + f" after {res.duration_s:.1f} s")
        if run.status == "active":
            why = ending_reason(res, result.get("error"))
            with console.status(f"{why}: ending the run (test grading)"):
                run = client.end(run_id, why)
        usage = (cli_run.finish(ws, Path(run.results_dir), run.feedback) if cli_run is not None
                 else None)
        return ExternalRun(**run.model_dump(), agent_exit_code=res.exit_code if res is not None else None,
                           llm_usage=usage)
    finally:
        if cli_run is not None and cli_run.gateway is not None:
            cli_run.gateway.stop()
        client.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def ending_reason(res: ExecResult | None, error: str | None = None) -> str:
    """Why a run ended that the agent did not finish, from how its command ended (feedback.json's
    ``reason``; never "the agent called finish")."""
    if res is None:
        return f"the agent's command could not run ({error or 'no result'})"
    if res.timed_out:
        return (f"wall-clock budget spent: the agent's command was still running after "
                f"{res.duration_s:.0f} s and was stopped")
    if res.exit_code is None:
        return (f"the agent's command was killed ({res.killed_reason or 'by the sandbox'}) "
                "before it called finish")
    if res.exit_code == 0:
        return "the agent's command exited (exit code 0) without calling finish"
    if res.exit_code > 128:
        return (f"the agent's command was killed by signal {res.exit_code - 128} "
                f"(exit code {res.exit_code}) before it called finish")
    return f"the agent's command crashed (exit code {res.exit_code}) without calling finish"


def _set_turn(service: Any, run_id: str, turn: int) -> None:
    """The run's trajectory steps from now on belong to turn ``turn``."""
    recorder = service.episode(service.run_row(run_id)).recorder
    if recorder is not None:
        recorder.turn = turn


def _agent_box(spec: AgentSpec, service: Any, created: RunCreated, sandbox: str, cli_run: CLIRun | None,
               agent_env: dict[str, str] | None, tmp: Path,
               console: Console) -> tuple[Sandbox, str, dict[str, str]]:
    """The sandbox the agent's command runs in (a CLI agent's: with its CLI mounted and the
    gateway bridged in; every agent's: with ``autorl-timer`` on its PATH), the command line's
    prefix and its exports."""
    episode = service.episode(service.run_row(created.run_id))
    exports = {str(k): str(v) for k, v in spec.options.items()}
    timer = install_timer(tmp / "timer-bin")
    sandbox_spec, prefix = with_timer(episode.sandbox_spec(), timer), timer_path(timer)
    if cli_run is not None:
        cli_run.start(Path(created.workspace), Path(created.results_dir), created.scenario,
                      service.scenario(created.scenario).task, created.time.budget_seconds,
                      created.max_submissions)
        exports |= cli_run.exports()
        sandbox_spec, prefix = cli_run.sandbox_spec(sandbox_spec), prefix + cli_run.command_prefix()
        console.print(f"[dim]driver model[/] {cli_run.model} [dim]through the LLM gateway to[/] "
                      f"{cli_run.settings.base_url}")
    exports |= {str(k): str(v) for k, v in (agent_env or {}).items()}
    shell_exports(exports, f"agent {spec.name} options")  # bad names refused before the sandbox
    return make_sandbox(sandbox, sandbox_spec), prefix, exports


def _show(console: Console, run: RunOut, shown: set[int], ended_only: bool) -> None:
    """Print each submission once, when it is graded (or, at the end, whatever state it is in)."""
    for sub in run.submissions:
        if sub.submission_id not in shown and (not ended_only or sub.status in ("done", "failed")):
            shown.add(sub.submission_id)
            console.print(_describe(sub))


def _describe(sub: SubmissionOut) -> str:
    if sub.status == "done" and sub.score is not None:
        return (f"submission {sub.submission_id} ({sub.model_path}): {sub.score:.2f} "
                f"(baseline {sub.baseline or 0.0:.2f}, {sub.improvement or 0.0:+.2f})")
    return f"submission {sub.submission_id} ({sub.model_path}) {sub.status}: {sub.error}"


class ExternalAgentFailed(RuntimeError):
    """An external agent's episode could not run; why is printed already. ``exit_code``: the
    command line's."""

    def __init__(self, exit_code: int):
        super().__init__(f"the external agent's episode failed (exit code {exit_code})")
        self.exit_code = exit_code


def run_external_command(spec: AgentSpec, folder: Path, scenario_id: str, console: Console,
                         **kwargs: Any) -> str | None:
    """``autorl-gym run --agent <external agent>``: the episode, then a table of its result;
    returns the results folder. :class:`ExternalAgentFailed` once the reason is printed."""
    from autorl_gym.runtime.progress import episode_table

    t0 = time.monotonic()
    console.rule(f"[bold]{scenario_id}[/] with external agent [bold]{spec.name}[/]")
    try:
        run = run_external_agent(spec, folder, scenario_id, console=console, **kwargs)
    except (RuntimeError, ValueError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise ExternalAgentFailed(2) from e
    console.print(episode_table(run.feedback or {}, time.monotonic() - t0, run.results_dir,
                                extra={"agent exit code": str(run.agent_exit_code)}))
    return run.results_dir
