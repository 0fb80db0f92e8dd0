"""Pluggable agents: ``agents/<name>/agent.yaml`` plus code: the spec, finding and loading an agent.

An agent is any object with ``reset(obs, info)`` and ``act(obs) -> tool call``. Its own
thinking time counts against the episode's wall-clock budget, since the budget is measured
from ``reset()``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from autorl_gym.agents import autorl_bench as arb
from autorl_gym.agents.npm_cli import CLISpec
from autorl_gym.agents.reprompt import OPTION_NAMES as REPROMPT_OPTIONS
from autorl_gym.agents.reprompt import RepromptSettings
from autorl_gym.core.paths import agent_dirs


@runtime_checkable
class Agent(Protocol):
    def reset(self, obs: str, info: dict[str, Any]) -> None: ...

    def act(self, obs: str) -> Any: ...


class AgentSpec(RepromptSettings):
    """agent.yaml. The ``reprompt`` fields (resume an external agent that stops early) come
    from :class:`~autorl_gym.agents.reprompt.RepromptSettings`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    entry: str | None = None  # "module_file:ClassName", module_file relative to the agent folder
    # An external agent instead: a shell command started inside the sandbox, which talks to the
    # grading server (GRADING_SERVER_URL) over HTTP; see autorl_gym.agents.external.
    start: str | None = None
    # A command-line coding agent (Claude Code, Codex, ...): its npm package, the API it speaks
    # (reached through the run's LLM gateway) and its instructions file; see agents/cli.py.
    cli: CLISpec | None = None
    resume: str | None = Field(None, description=(
        "with reprompt on: the command that resumes the agent (its CLI's continue flag; "
        "AGENT_PROMPT holds the resume message); none: the start command again, with that prompt"))
    # files copied into the workspace's code/ beside the folder's own, by paths relative to the
    # agent folder (another agent's script, rather than a copy of it)
    files: list[str] = []
    options: dict[str, Any] = {}
    #: whose HTTP contract the agent speaks: ours, or AutoRL-Bench's (a config.yaml folder,
    #: see agents/autorl_bench.py: no token, POST /submit, GET /time)
    protocol: Literal["autorl-gym", "autorl-bench"] = "autorl-gym"

    @model_validator(mode="after")
    def _entry_or_start(self) -> AgentSpec:
        if (self.entry is None) == (self.start is None):
            raise ValueError("give exactly one of 'entry' (a Python agent class) and 'start' "
                             "(a command started in the sandbox)")
        if self.cli is not None and self.start is None:
            raise ValueError("a 'cli' agent needs a 'start' command")
        if (self.reprompt or self.resume is not None) and self.start is None:
            raise ValueError("'reprompt' and 'resume' are for external agents (a 'start' command): "
                             "a Python agent's episode loop never stops early")
        for name in self.files:
            if Path(name).is_absolute() or Path(name).suffix not in (".py", ".sh", ".md", ".txt", ".json"):
                raise ValueError(f"files: {name!r} must be a relative path to a script or text file")
        return self

    def extra_files(self, folder: Path) -> list[Path]:
        """The ``files:`` as paths; AgentError names one that is missing or that resolves outside
        the folder holding the agent folders (host files, hidden splits, keys)."""
        out = []
        root = folder.resolve().parent
        for name in self.files:
            path = (folder / name).resolve()
            if not _inside(path, root):
                raise AgentError(f"agent {self.name}: files: {name} resolves to {path}, outside "
                                 f"{root}: an agent may name files of the agent folders only")
            if not path.is_file():
                raise AgentError(f"agent {self.name}: files: {name} is not a file ({path})")
            out.append(path)
        return out


class AgentError(ValueError):
    pass


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_agent_folder(folder: Path) -> None:
    """AgentError if a link in an agent folder leads outside the folder holding the agent
    folders: an external agent's folder is copied into the workspace with its links followed,
    so such a link would carry host files (hidden splits, keys) into the sandbox."""
    root = folder.resolve().parent
    todo, seen = [folder], set()
    while todo:
        current = todo.pop()
        if current.resolve() in seen:
            continue
        seen.add(current.resolve())
        for entry in current.iterdir():
            if entry.is_symlink():
                target = entry.resolve()
                if not _inside(target, root):
                    raise AgentError(f"{entry}: a link to {target}, outside {root}; an agent folder "
                                     "is copied into the sandbox, so its links must stay among the "
                                     "agent folders")
            if entry.is_dir():
                todo.append(entry)


def with_reprompt_options(spec: AgentSpec, options: dict[str, Any]) -> tuple[AgentSpec, dict[str, Any]]:
    """``--agent-option reprompt=...`` (and its companions) applied to the spec, checked as
    agent.yaml's fields are (AgentError names a bad value); returns the spec and the options
    left for the agent itself."""
    mine = {k: v for k, v in options.items() if k in REPROMPT_OPTIONS}
    if not mine:
        return spec, options
    try:
        spec = AgentSpec.model_validate({**spec.model_dump(), **mine})
    except ValidationError as e:
        errors = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'reprompt'}: {err['msg']}"
                           for err in e.errors())
        raise AgentError(f"agent {spec.name}: bad reprompt option ({errors})") from e
    return spec, {k: v for k, v in options.items() if k not in REPROMPT_OPTIONS}


def find_agents() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in agent_dirs():
        if d.is_dir():
            for yml in sorted(d.glob("*/agent.yaml")):
                found.setdefault(yml.parent.name, yml)
    return found


def load_agent_spec(name: str) -> tuple[AgentSpec, Path]:
    agents = find_agents()
    if name not in agents:
        folder = arb.find_autorl_bench_agents(agent_dirs()).get(name)
        if folder is None and arb.is_autorl_bench_folder(Path(name).expanduser()):
            folder = Path(name).expanduser().resolve()  # a path to an AutoRL-Bench agent folder
        if folder is None:
            found = sorted({*agents, *arb.find_autorl_bench_agents(agent_dirs())})
            raise AgentError(f"unknown agent {name!r}; found: {', '.join(found) or 'none'} "
                             "(agents live in agents/<name>/agent.yaml, or AutoRL-Bench's "
                             "agents/<name>/config.yaml)")
        try:
            spec = AgentSpec.model_validate(arb.agent_fields(folder))
        except (arb.AutoRLBenchError, ValidationError) as e:
            raise AgentError(str(e)) from e
        check_agent_folder(folder)
        return spec, folder
    path = agents[name]
    try:
        spec = AgentSpec.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as e:
        raise AgentError(f"{path}: invalid agent file: {e}") from e
    spec.extra_files(path.parent)  # a missing file is refused here, before any run starts
    check_agent_folder(path.parent)
    return spec, path.parent


def make_agent(name: str, **options: Any) -> Agent:
    spec, folder = load_agent_spec(name)
    if spec.entry is None:
        raise AgentError(f"agent {name!r} is an external agent (a 'start' command): run it with "
                         f"autorl-gym run --agent {name}")
    module_file, _, cls_name = spec.entry.partition(":")
    file = folder / f"{module_file}.py"
    if not file.is_file() or not cls_name:
        raise AgentError(f"{folder / 'agent.yaml'}: entry {spec.entry!r} must be 'file:Class' "
                         f"with {file} present")
    module = _load_module(name, folder, module_file)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise AgentError(f"{file} has no class {cls_name}")
    try:
        return cls(**{**spec.options, **options})
    except TypeError as e:
        raise AgentError(f"agent {name!r} does not take these options "
                         f"({', '.join(sorted({**spec.options, **options})) or 'none'}): {e}") from e
    except ValueError as e:
        raise AgentError(f"agent {name!r}: bad option: {e}") from e


def _load_module(name: str, folder: Path, module_file: str) -> Any:
    """Import an agent's entry module. A folder with ``__init__.py`` is imported as a package
    (``autorl_gym_agent_<name>``), so its modules can import each other relatively."""
    pkg_name = f"autorl_gym_agent_{name}"
    if (folder / "__init__.py").is_file():
        if pkg_name not in sys.modules:
            pkg_spec = importlib.util.spec_from_file_location(
                pkg_name, folder / "__init__.py", submodule_search_locations=[str(folder)])
            assert pkg_spec and pkg_spec.loader
            pkg = importlib.util.module_from_spec(pkg_spec)
            sys.modules[pkg_name] = pkg
            pkg_spec.loader.exec_module(pkg)
        return importlib.import_module(f"{pkg_name}.{module_file}")
    module_spec = importlib.util.spec_from_file_location(pkg_name, folder / f"{module_file}.py")
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[pkg_name] = module
    module_spec.loader.exec_module(module)
    return module


def import_agent_module(name: str, module_file: str) -> Any:
    """A module of a registered agent, e.g. ``import_agent_module("rdagent", "records")``."""
    _spec, folder = load_agent_spec(name)
    if not (folder / f"{module_file}.py").is_file():
        raise AgentError(f"agent {name!r} has no module {module_file}.py in {folder}")
    return _load_module(name, folder, module_file)


def agent_options(pairs: list[str] | None = None, **named: Any) -> dict[str, Any]:
    """Agent options from ``KEY=VALUE`` strings (values read as YAML) and named ones (None = unset)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AgentError(f"agent option {pair!r} must look like KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise AgentError(f"agent option {pair!r}: value is not valid YAML ({e})") from e
    out.update({k: v for k, v in named.items() if v is not None})
    return out
