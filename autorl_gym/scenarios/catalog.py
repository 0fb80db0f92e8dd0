"""The scenario catalogue: where scenario files are found, how one is loaded and validated, and
their registration with Gymnasium.

``import autorl_gym`` registers every scenario id without reading the scenario files: the ids come
from each folder's ``index.yaml`` (``id: file name``; the built-in folder ships one, kept in step
with its files by the tests and ``autorl-gym check``), and a file no index names is read for its
``id:`` line only. A scenario is loaded and validated, its task family imported, when it is made
(``gym.make``, :func:`get_scenario`); :func:`catalog` loads and validates them all.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from autorl_gym.core.paths import scenario_dirs
from autorl_gym.core.scenario import ID_RE, Scenario, ScenarioError
from autorl_gym.grading.validate import check_scenario

ENTRY_POINT = "autorl_gym.envs.autorl_env:AutoRLEnv"
INDEX_FILE = "index.yaml"
_ID_LINE = re.compile(r"^id:\s*['\"]?([^'\"\s#]+)", re.M)


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid scenario"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  field '{loc}': {e['msg']}")
    return "\n".join(lines)


def load_scenario_file(path: str | Path) -> Scenario:
    """Load and validate one scenario YAML; :class:`ScenarioError` names the file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read scenario file: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario must be a mapping of fields, got {type(raw).__name__}")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as e:
        raise ScenarioError(_format_validation_error(path, e)) from e
    if scenario.data.path and not scenario.data.path.is_absolute():
        scenario.data.path = (path.parent / scenario.data.path).resolve()
    try:
        check_scenario(scenario)
    except ValueError as e:
        raise ScenarioError(f"{path}: invalid scenario\n  {e}") from e
    scenario.source_file = path.resolve()
    return scenario


def scenario_files(folder: Path) -> list[Path]:
    """The scenario files of one folder (``*.yaml``, ``*.yml``; not its index)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")] if p.name != INDEX_FILE)


def read_index(folder: Path) -> dict[str, str]:
    """A folder's ``index.yaml`` (scenario id: file name); empty when it has none or it is unreadable."""
    path = folder / INDEX_FILE
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def declared_id(path: Path) -> str | None:
    """The ``id:`` a scenario file declares, read without loading the file (None if it has none)."""
    try:
        match = _ID_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return match.group(1) if match else None


class ScenarioIds(BaseModel):
    """What the indexes and ``id:`` lines declare: each id's file, and the files without a valid id."""

    ids: dict[str, Path] = Field(default_factory=dict)
    unregistered: list[str] = Field(default_factory=list)


def scan_ids(dirs: list[Path] | None = None) -> ScenarioIds:
    """Every scenario id and its file, without loading any scenario (the indexes, and the ``id:``
    line of a file no index names); the first folder that declares an id keeps it."""
    found = ScenarioIds()
    for folder in dirs if dirs is not None else scenario_dirs():
        files = scenario_files(folder)
        by_name = {p.name: p for p in files}
        indexed = {name: sid for sid, name in read_index(folder).items() if name in by_name}
        for path in files:
            sid = indexed.get(path.name) or declared_id(path)
            if sid and ID_RE.match(sid):
                found.ids.setdefault(sid, path)
            else:
                found.unregistered.append(f"{path}: no valid 'id:' line (an id is versioned like "
                                          f"'AutoRL-Name-v0'; got {sid!r})")
    return found


def scenario_ids(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Every scenario id and its file (see :func:`scan_ids`)."""
    return scan_ids(dirs).ids


def write_index(folder: Path) -> Path:
    """Write ``folder``'s ``index.yaml`` from its files (every one loaded and validated first)."""
    ids = {load_scenario_file(p).id: p.name for p in scenario_files(folder)}
    path = folder / INDEX_FILE
    path.write_text("# scenario id: file (written by `autorl-gym check --write-index`)\n"
                    + yaml.safe_dump(dict(sorted(ids.items())), sort_keys=False), encoding="utf-8")
    return path


class ScenarioCatalog(BaseModel):
    scenarios: dict[str, Scenario] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)


def discover(dirs: list[Path] | None = None) -> ScenarioCatalog:
    """Every scenario file in the folders, loaded and validated; broken files become errors."""
    catalog = ScenarioCatalog()
    for d in dirs if dirs is not None else scenario_dirs():
        for path in scenario_files(d):
            try:
                sc = load_scenario_file(path)
            except ScenarioError as e:
                catalog.errors.append(str(e))
                continue
            if sc.id in catalog.scenarios:
                other = catalog.scenarios[sc.id].source_file
                catalog.errors.append(f"{path}: field 'id': {sc.id} is already defined in {other}")
                continue
            catalog.scenarios[sc.id] = sc
    return catalog


_CATALOG: ScenarioCatalog | None = None
#: the ids registered so far and their files: a registered id stays makeable when the folders
#: (``AUTORL_GYM_SCENARIOS``) change afterwards
_REGISTERED: dict[str, Path] = {}


def catalog(refresh: bool = False) -> ScenarioCatalog:
    """Every scenario, loaded and validated (once; ``refresh`` reads the folders again)."""
    global _CATALOG
    if _CATALOG is None or refresh:
        _CATALOG = discover()
        _load_id.cache_clear()
    return _CATALOG


@cache
def _load_id(sid: str, path: Path) -> Scenario:
    scenario = load_scenario_file(path)
    if scenario.id != sid:
        raise ScenarioError(f"{path}: declares id {scenario.id!r}, but is indexed as {sid!r}")
    return scenario


def get_scenario(scenario_id: str) -> Scenario:
    """A scenario by id (``autorl_gym:`` prefix allowed) or by the path of its YAML file, loaded
    and validated; ScenarioError lists the registered ids."""
    sid = scenario_id.split(":", 1)[1] if scenario_id.startswith("autorl_gym:") else scenario_id
    if _CATALOG is not None and sid in _CATALOG.scenarios:
        return _CATALOG.scenarios[sid]
    if sid in _REGISTERED:  # registered at import: no need to read the folders again
        return _load_id(sid, _REGISTERED[sid])
    ids = scenario_ids()
    if sid in ids:
        return _load_id(sid, ids[sid])
    path = Path(sid)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_scenario_file(path)
    known = ", ".join(sorted(ids)) or "none"
    raise ScenarioError(f"unknown scenario {scenario_id!r}; registered: {known}")


def register(scenario: Scenario | str) -> str:
    """Register one scenario with Gymnasium under its id: an id of the catalogue (made by id,
    loaded when made) or a loaded scenario (one from a YAML path outside the scenario folders
    too); returns the id."""
    import gymnasium as gym

    sid = scenario if isinstance(scenario, str) else scenario.id
    if sid not in gym.registry:
        by_id = isinstance(scenario, str) or scenario_ids().get(sid) == scenario.source_file
        gym.register(
            id=sid,
            entry_point=ENTRY_POINT,
            kwargs={"scenario": sid if by_id else scenario},
            nondeterministic=True,
            disable_env_checker=False,
            order_enforce=True,
        )
    return sid


def register_all() -> ScenarioIds:
    """Register every scenario id with Gymnasium, loading none (see the module's docstring); a
    file without a valid id is not registered, with a warning naming it."""
    found = scan_ids()
    for sid, path in found.ids.items():
        _REGISTERED.setdefault(sid, path)
        register(sid)
    for problem in found.unregistered:
        warnings.warn(f"autorl_gym: scenario not registered: {problem}", stacklevel=2)
    return found
