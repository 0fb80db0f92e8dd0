"""``autorl-gym list | run | eval | baseline | serve | report | leaderboard | sweep | sandbox | agents``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from autorl_gym.cli.agents import agents_app
from autorl_gym.cli.export_harbor import export_app
from autorl_gym.cli.micro import micro_app

app = typer.Typer(help="autorl-gym: can an AI agent post-train a language model?",
                  no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # error messages are never broken mid-path


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _sandbox_kind(value: str) -> str:
    """--sandbox: a registered kind (autorl_gym.sandbox.registry), else a usage error listing them."""
    from autorl_gym.sandbox.registry import UnknownSandboxKind, check_sandbox_kind

    try:
        return check_sandbox_kind(value)
    except UnknownSandboxKind as e:
        raise typer.BadParameter(str(e)) from None


SANDBOX_HELP = "sandbox kind: local (bubblewrap), none, or any registered (autorl-gym sandbox list)"


@app.command("check")
def check_scenarios(
    write_index: Annotated[bool, typer.Option(
        "--write-index", help="rewrite the built-in folder's index.yaml from its files")] = False,
) -> None:
    """Load and validate every scenario file (its task family, grader backend and fields), and
    check that each folder's index.yaml names its files as they are. ``import autorl_gym``
    registers the ids from the indexes without loading anything; this is where a broken file or
    a stale index shows."""
    from autorl_gym.core.paths import PACKAGE_DIR, scenario_dirs
    from autorl_gym.scenarios.catalog import INDEX_FILE, catalog, read_index
    from autorl_gym.scenarios.catalog import write_index as write

    builtin = PACKAGE_DIR / "scenarios"
    if write_index:
        console.print(f"[dim]wrote[/] {write(builtin)}")
    cat = catalog(refresh=True)
    problems = list(cat.errors)
    for folder in scenario_dirs():
        index = read_index(folder)
        if not index and folder != builtin:
            continue  # a folder without an index: its files are read for their ids
        by_file = {sc.source_file.name: sid for sid, sc in cat.scenarios.items()
                   if sc.source_file is not None and sc.source_file.parent == folder.resolve()}
        if index != {sid: name for name, sid in by_file.items()}:
            problems.append(f"{folder / INDEX_FILE}: does not match the folder's files "
                            "(autorl-gym check --write-index rewrites the built-in one)")
    table = Table(title="scenarios")
    for col in ("id", "task family", "file"):
        table.add_column(col, overflow="fold")
    for sid, sc in cat.scenarios.items():
        table.add_row(sid, sc.task_family, _home(str(sc.source_file)))
    console.print(table)
    for problem in problems:
        err.print(f"[bold red]error:[/] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]{len(cat.scenarios)} scenarios valid[/]")


@app.command("list")
def list_scenarios(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The registered scenarios with the four API fields."""
    from autorl_gym.scenarios.catalog import catalog
    from autorl_gym.scenarios.status import cached_baseline

    cat = catalog(refresh=True)
    rows = []
    for sc in cat.scenarios.values():
        fields = cached_baseline(sc)
        rows.append({"id": sc.id, "level": sc.level, "title": sc.title,
                     "feedback_split": sc.feedback_split, **fields})
    if as_json:
        console.print_json(json.dumps({"scenarios": rows, "errors": cat.errors}))
    else:
        for r in rows:
            score = r["baseline_score"]
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column(overflow="fold")
            grid.add_row("base_model_path", _home(r["base_model_path"]))
            grid.add_row("train_data_path", _home(r["train_data_path"]))
            grid.add_row("baseline_score", f"{score:.2f} ({r['feedback_split']} split)"
                         if score is not None else "not measured yet (autorl-gym baseline)")
            grid.add_row("metric", r["metric"])
            console.print(f"[bold]{r['id']}[/]  level {r['level']}  {r['title']}")
            console.print(grid, "")
        for e in cat.errors:
            err.print(f"[bold red]broken scenario:[/] {e}")
    if cat.errors:
        raise typer.Exit(1)


def _home(path: object) -> str:
    text, home = str(path), str(Path.home())
    return "~" + text[len(home):] if text.startswith(home + "/") else text


def _short(obs: str, n: int = 100) -> str:
    line = obs.strip().splitlines()[0] if obs.strip() else ""
    return line[:n]


@app.command()
def run(
    env_id: Annotated[str, typer.Option("--env", help="scenario id")] = "AutoRL-Micro-Arith-v0",
    agent: Annotated[str, typer.Option(help="agent name (agents/<name>/agent.yaml)")] = "scripted",
    sandbox: Annotated[str, typer.Option(help=SANDBOX_HELP, callback=_sandbox_kind)] = "local",
    gpus: Annotated[str | None, typer.Option(
        help="GPUs for the agent's commands (docker sandbox), as docker run --gpus takes them: "
             "all, a count, or device=0,1; the grader keeps the others")] = None,
    results_dir: Annotated[Path, typer.Option(help="where results go")] = Path("results"),
    workspace_root: Annotated[Path, typer.Option(help="where workspaces go")] = Path("workspace"),
    base_model: Annotated[str | None, typer.Option(help="override the base model")] = None,
    budget_seconds: Annotated[float | None, typer.Option(help="override the time budget")] = None,
    max_steps: Annotated[int | None, typer.Option(help="override the step limit")] = None,
    seed: Annotated[int | None, typer.Option(help="reset seed")] = None,
    llm_base_url: Annotated[str | None, typer.Option(
        help="the LLM endpoint: OpenAI-compatible for rdagent; for a CLI agent the upstream of its "
             "gateway (default: its provider's API); key from ANTHROPIC_API_KEY, OPENAI_API_KEY or "
             "GEMINI_API_KEY")] = None,
    llm_model: Annotated[str | None, typer.Option(help="the driver model of an LLM or CLI agent")] = None,
    llm_max_requests: Annotated[int | None, typer.Option(help="CLI agents: cap on LLM calls")] = None,
    llm_max_tokens: Annotated[int | None, typer.Option(help="CLI agents: cap on LLM tokens")] = None,
    llm_max_cost: Annotated[float | None, typer.Option(help="CLI agents: cap on LLM cost, USD")] = None,
    agent_option: Annotated[list[str] | None, typer.Option(
        "--agent-option", help="KEY=VALUE passed to the agent (YAML value); repeatable")] = None,
    compat_scoring: Annotated[str, typer.Option(
        help="autorl-gym: submissions get dev feedback, test is graded once at the end; "
             "autorl-bench: as AutoRL-Bench scores, each submission on test, the run keeping the "
             "best")] = "autorl-gym",
) -> None:
    """Run one episode of an agent on a scenario and print baseline, score and improvement.
    An AutoRL-Bench agent folder (config.yaml) runs too: --agent NAME or --agent PATH."""
    from autorl_gym.agents.launch import EpisodeRequest, LaunchError, launch_episode
    from autorl_gym.agents.spec import AgentError, agent_options
    from autorl_gym.report.commands import report_after_episode
    from autorl_gym.scenarios.compat import COMPAT_SCORINGS

    if compat_scoring not in COMPAT_SCORINGS:
        _fail(f"--compat-scoring must be one of {', '.join(COMPAT_SCORINGS)}, not {compat_scoring!r}")
    try:
        req = EpisodeRequest(
            env_id=env_id, agent=agent, sandbox=sandbox, gpus=gpus, results_dir=results_dir,
            workspace_root=workspace_root, base_model=base_model, budget_seconds=budget_seconds,
            max_steps=max_steps, seed=seed, llm_base_url=llm_base_url, llm_model=llm_model,
            llm_max_requests=llm_max_requests, llm_max_tokens=llm_max_tokens,
            llm_max_cost=llm_max_cost, agent_options=agent_options(agent_option),
            compat_scoring=compat_scoring)
        outcome = launch_episode(req, console, drive=_drive_with_progress, err=err)
    except AgentError as e:
        _fail(str(e))
    except LaunchError as e:
        if isinstance(e.__cause__, typer.Exit):  # the external agent's run already said why
            raise e.__cause__ from None
        _fail(str(e))
    report_after_episode(outcome.results_dir, console, err)


def _drive_with_progress(env: Any, the_agent: Any, req: Any, env_id: str) -> dict[str, Any]:
    """``autorl-gym run``'s loop: a rich progress line per step, then the episode's table."""
    from autorl_gym.agents.loop import run_episode
    from autorl_gym.runtime.progress import episode_table

    t0 = time.monotonic()
    console.rule(f"[bold]{env_id}[/] with agent [bold]{req.agent}[/]")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                  console=console) as prog:
        task = prog.add_task("preparing (base model, baseline)", total=None, status="")

        def on_step(step: int, action: Any, obs: str, info: dict[str, Any]) -> None:
            b = info["budget"]
            tool = info.get("tool") or "invalid call"
            sub = info.get("submission")
            if sub and sub.get("error") is None:
                line = (f"submission {sub['id']}: {sub['score']:.2f} on {sub['split']} "
                        f"(baseline {sub['baseline']:.2f}, {sub['improvement']:+.2f})")
            else:
                line = _short(obs)
            prog.console.print(f"[dim]step {step:>3}[/] [cyan]{tool:<10}[/] {line}")
            total = env.unwrapped.budget_seconds
            prog.update(task, description=f"step {step}: {tool}", total=total,
                        completed=b["elapsed_s"],
                        status=f"{b['seconds_left']:.0f}s / {b['steps_left']} steps left")

        info = run_episode(env, _Announcing(the_agent, prog, task), seed=req.seed, on_step=on_step)
    console.print(episode_table(info.get("feedback") or {}, time.monotonic() - t0,
                                info.get("results_dir")))
    return info


class _Announcing:
    """Wraps an agent to show which tool call is under way."""

    def __init__(self, agent: Any, prog: Progress, task: Any):
        self.agent, self.prog, self.task = agent, prog, task

    def reset(self, obs: str, info: dict[str, Any]) -> None:
        self.prog.console.print(f"[dim]workspace[/] {info['workspace']}")
        self.prog.console.print(f"[dim]baseline on {info['scenario']['feedback_split']}[/] "
                                f"{info['baseline']:.2f}")
        self.agent.reset(obs, info)

    def act(self, obs: str) -> Any:
        action = self.agent.act(obs)
        tool = action.get("tool") if isinstance(action, dict) else getattr(action, "tool", "?")
        self.prog.update(self.task, description=f"running {tool}")
        return action


def _grader_for(env_id: str, base_model: str | None, backend: str | None = None):
    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading.backends.registry import backend_names
    from autorl_gym.grading.grader import Grader
    from autorl_gym.scenarios.catalog import get_scenario

    if backend is not None and backend not in backend_names():
        _fail(f"unknown backend {backend!r}; available: {', '.join(backend_names())}")
    scenario = get_scenario(env_id)
    return Grader(scenario, resolve_assets(scenario, base_model), backend=backend)


def _grading_errors() -> tuple[type[Exception], ...]:
    from autorl_gym.core.records import SubmissionError
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.grading.backends.lm_eval import LmEvalUnavailable
    from autorl_gym.grading.backends.vllm import VllmUnavailable
    from autorl_gym.grading.isolation import GradingFailed

    return (ScenarioError, SubmissionError, FileNotFoundError, LmEvalUnavailable, VllmUnavailable,
            GradingFailed)


@app.command("eval")
def eval_model(
    model_path: Annotated[Path, typer.Argument(help="a full model or LoRA adapter folder")],
    env_id: Annotated[str, typer.Option("--env")] = "AutoRL-Micro-Arith-v0",
    split: Annotated[str, typer.Option(help="dev or test")] = "dev",
    limit: Annotated[int | None, typer.Option(help="grade only the first N problems")] = None,
    backend: Annotated[str | None, typer.Option(
        help="grader backend: hf, lm_eval or vllm (default: the scenario's)")] = None,
    base_model: Annotated[str | None, typer.Option(help="base model for adapters")] = None,
) -> None:
    """Grade a model on a scenario split and print the score as JSON."""
    from autorl_gym.grading import forkserver
    from autorl_gym.grading.submission import inspect_submission
    from autorl_gym.runtime.progress import progress_bar

    if split not in ("dev", "test"):
        _fail(f"--split must be dev or test, not {split!r}")
    forkserver.start_soon()  # the grading process's imports, while this one finds the assets
    try:
        grader = _grader_for(env_id, base_model, backend)
        info = inspect_submission(model_path.resolve())
        grader.prewarm(split, info.kind)
        with progress_bar(f"baseline on {split}") as update:
            base = grader.baseline(split, limit, progress=update)
        with progress_bar(f"grading {model_path.name} on {split}") as update:
            res = grader.evaluate(model_path.resolve(), split, limit, update, info)
    except _grading_errors() as e:
        _fail(str(e))
    out = res.summary() | {"baseline": base.score, "improvement": res.score - base.score}
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


@app.command()
def baseline(
    env_id: Annotated[str, typer.Option("--env")] = "AutoRL-Micro-Arith-v0",
    split: Annotated[str, typer.Option(help="dev or test")] = "test",
    base_model: Annotated[str | None, typer.Option(help="override the base model")] = None,
    backend: Annotated[str | None, typer.Option(
        help="grader backend: hf, lm_eval or vllm (default: the scenario's)")] = None,
    limit: Annotated[int | None, typer.Option(help="measure on the first N problems only")] = None,
) -> None:
    """Measure (once; cached by model hash) the base model's score on a split."""
    from autorl_gym.runtime.progress import progress_bar

    if split not in ("dev", "test"):
        _fail(f"--split must be dev or test, not {split!r}")
    try:
        grader = _grader_for(env_id, base_model, backend)
        with progress_bar(f"baseline on {split}") as update:
            res = grader.baseline(split, limit, progress=update)
    except _grading_errors() as e:
        _fail(str(e))
    sys.stdout.write(json.dumps(res.summary(), indent=2) + "\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    env_id: Annotated[str, typer.Option("--env", help="default scenario")] = "AutoRL-Micro-Arith-v0",
    sandbox: Annotated[str, typer.Option(help=SANDBOX_HELP, callback=_sandbox_kind)] = "local",
    ledger: Annotated[Path, typer.Option(help="SQLite ledger")] = Path("results/ledger.sqlite"),
    results_dir: Annotated[Path, typer.Option(help="where results go")] = Path("results"),
    workspace_root: Annotated[Path, typer.Option(help="where workspaces go")] = Path("workspace"),
    openenv: Annotated[bool, typer.Option(
        "--openenv", help="serve the OpenEnv environment server instead (WebSocket sessions, MCP "
                          "tools; the openenv extra)")] = False,
    max_sessions: Annotated[int, typer.Option(min=1, help="--openenv: episodes at once, at most")] = 4,
) -> None:
    """The grading HTTP API (OpenAPI document at /docs and /openapi.json) and the results
    dashboard over RESULTS_DIR (/dashboard/); with --openenv, the OpenEnv environment server."""
    if openenv:
        from autorl_gym.cli.openenv import serve_openenv

        raise typer.Exit(serve_openenv(host, port, env_id, sandbox, max_sessions, results_dir,
                                       workspace_root, err))
    from autorl_gym.cli.serve import serve as run_server
    from autorl_gym.server import ServerSettings

    settings = ServerSettings(ledger=ledger, results_dir=results_dir, workspace_root=workspace_root,
                              sandbox=sandbox, default_scenario=env_id)
    try:
        run_server(settings, host, port,
                   on_ready=lambda url: err.print(f"grading API on {url} (docs: {url}/docs; "
                                                  f"results dashboard: {url}/dashboard/)"))
    except OSError as e:
        _fail(f"cannot listen on {host}:{port}: {e}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a results folder (results/{scenario}_{timestamp})")],
    out: Annotated[Path | None, typer.Option(help="write the report here (default: RUN_DIR)")] = None,
) -> None:
    """Write metrics.json, report.md and report.html for one recorded run."""
    from autorl_gym.report.commands import report_command

    raise typer.Exit(report_command(run_dir, out, console, err))


@app.command()
def leaderboard(
    results_dir: Annotated[Path, typer.Argument(help="a folder holding results folders")] = Path("results"),
    out: Annotated[Path | None, typer.Option(help="write CSV and HTML here (default: RESULTS_DIR)")] = None,
    fresh: Annotated[bool, typer.Option(help="recompute every run, ignoring metrics.json")] = False,
    count_flagged: Annotated[bool, typer.Option(
        help="count contaminated or tampered runs in the means (left out by default)")] = False,
) -> None:
    """One row per (scenario, agent, driver model, base model) over every recorded run."""
    from autorl_gym.report.commands import leaderboard_command

    raise typer.Exit(leaderboard_command(results_dir, out, fresh, console, err, count_flagged))


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="a results folder (results/{scenario}_{timestamp})")],
    as_json: Annotated[bool, typer.Option("--json", help="print audit.json")] = False,
) -> None:
    """Contamination audit of a run: its workspace, LLM calls and tool calls against the hidden
    dev and test items (writes audit.json; exit 1 when suspect or contaminated)."""
    from autorl_gym.cli.main.audit import audit_command

    raise typer.Exit(audit_command(run_dir, as_json, console, err))


@app.command()
def verify(
    run_dir: Annotated[Path, typer.Argument(help="a results folder (results/{scenario}_{timestamp})")],
    tolerance: Annotated[float | None, typer.Option(
        help="score points re-grading may differ by (default: by backend)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
    sample: Annotated[int | None, typer.Option(
        help="a folder of runs (a sweep's): verify this many of them, drawn at random")] = None,
    seed: Annotated[int, typer.Option(help="the draw of --sample")] = 0,
) -> None:
    """Re-grade a run's recorded submission and check its score, weights hash and provenance
    against the folder (exit 1 when a check fails). Given a folder of runs, verifies each (or a
    sample)."""
    from autorl_gym.cli.main.audit import verify_command

    raise typer.Exit(verify_command(run_dir, tolerance, as_json, console, err, sample, seed))


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="a sweep file (SWEEP.yaml: the grid of cells)")],
    address: Annotated[str | None, typer.Option(
        help="a Ray cluster's address (default: a local Ray on this machine)")] = None,
    num_cpus: Annotated[float | None, typer.Option(
        help="local Ray only: the CPUs it may schedule (default: all)")] = None,
    ray_dashboard: Annotated[bool, typer.Option(help="start Ray's own dashboard (local Ray)")] = False,
    plan: Annotated[bool, typer.Option(help="list the cells and what is complete; run nothing")] = False,
    results_dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="serve the results dashboard while the sweep runs")] = True,
    dashboard_port: Annotated[int, typer.Option(
        help="the dashboard's port on 127.0.0.1 (0: any free port)", min=0, max=65535)] = 8001,
) -> None:
    """Run every episode of a sweep's grid as Ray tasks (complete cells are skipped), then write
    the sweep's leaderboard."""
    from autorl_gym.cli.sweep import sweep_command

    raise typer.Exit(sweep_command(sweep_file, address, num_cpus, ray_dashboard, plan, console, err,
                                   dashboard_port if results_dashboard else None))


app.add_typer(export_app, name="export")   # autorl_gym/cli/export_harbor.py: runs (default), harbor


@export_app.command("runs")
def export(
    run_dir: Annotated[Path, typer.Argument(help="a results/<run> folder, or a folder of runs")],
    fmt: Annotated[str, typer.Option("--format", help="output format: openai-chat (chat JSONL) or "
                                     "atif (Harbor's ATIF trajectories)")] = "openai-chat",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="JSONL file to write (default: stdout); with "
                                                     "--format atif and one run, a .json file holds "
                                                     "that one document")] = None,
) -> None:
    """Write recorded episodes (one line per episode) for agent SFT or RL: chat-format JSONL, or
    ATIF trajectories."""
    from autorl_gym.report.export import ExportError, export_jsonl, export_lines

    try:
        if output is None:
            lines = export_lines(run_dir, fmt)  # type: ignore[arg-type]
            sys.stdout.write("".join(line + "\n" for line in lines))
        else:
            n = export_jsonl(run_dir, output, fmt)  # type: ignore[arg-type]
            err.print(f"wrote {n} episode{'s' if n != 1 else ''} to {output}")
    except ExportError as e:
        _fail(str(e))


sandbox_app = typer.Typer(help="Sandbox backends: list the registered kinds, check one against "
                          "the conformance suite.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(agents_app, name="agents")
app.add_typer(micro_app, name="micro")   # autorl_gym/cli/micro.py


@sandbox_app.command("list")
def sandbox_list() -> None:
    """The registered sandbox kinds (built in, @sandbox_backend, autorl_gym.sandboxes entry points)."""
    from autorl_gym.cli.sandbox import list_command

    raise typer.Exit(list_command(console))


@sandbox_app.command("check")
def sandbox_check(
    kind: Annotated[str, typer.Argument(help="a registered sandbox kind")],
    check: Annotated[list[str] | None, typer.Option(help="run only this check; repeatable")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    scratch: Annotated[Path | None, typer.Option(help="folder for the checks' files (default: a "
                                                  "temporary one)")] = None,
) -> None:
    """Run the sandbox conformance suite on KIND; exit code 1 if a check fails."""
    from autorl_gym.cli.sandbox import check_command

    raise typer.Exit(check_command(kind, check, as_json, scratch, console, err))


attacks_app = typer.Typer(help="The attack suite: known attacks on the benchmark's integrity, run "
                          "against a real episode.", no_args_is_help=True)
app.add_typer(attacks_app, name="attacks")


@attacks_app.command("list")
def attacks_list() -> None:
    """The registered attacks, by class."""
    from autorl_gym.cli.attacks import list_command

    raise typer.Exit(list_command(console))


@attacks_app.command("run")
def attacks_run(
    scenario: Annotated[str, typer.Option(help="scenario id or YAML path")] = "AutoRL-Micro-Arith-v0",
    sandbox: Annotated[str, typer.Option(help=SANDBOX_HELP, callback=_sandbox_kind)] = "local",
    only: Annotated[list[str] | None, typer.Option(help="run only this attack; repeatable")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    scratch: Annotated[Path | None, typer.Option(help="folder for the attacks' files (default: a "
                                                  "temporary one)")] = None,
) -> None:
    """Run every known attack that applies to SCENARIO and SANDBOX; exit code 1 if one breaks."""
    from autorl_gym.cli.attacks import run_command

    raise typer.Exit(run_command(scenario, sandbox, only, as_json, scratch, console, err))


image_app = typer.Typer(help="Docker images: the sandbox's and the grader's on GPU machines (docker/).")
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    target: Annotated[str, typer.Argument(help="train, eval, or hostbind (the local default)")] = "train",
    tag: Annotated[str | None, typer.Option(help="tag of the image (default autorl-gym/TARGET)")] = None,
    probe_timeout: Annotated[float, typer.Option(help="seconds to wait for the registry")] = 3.0,
) -> None:
    """Build an image where its base image can be pulled; says so at once where it cannot."""
    from autorl_gym.sandbox.docker.images import ImageBuildError, build_image

    try:
        built = build_image(target, tag=tag, probe_timeout_s=probe_timeout,
                            log=lambda line: err.print(line, markup=False, highlight=False))
    except ImageBuildError as e:
        _fail(str(e), code=1)
    console.print(built)


if __name__ == "__main__":
    app()
