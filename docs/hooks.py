"""MkDocs hooks: the reference pages are generated from the package at build time, never written.

* ``reference/cli.md``: the typer app ``autorl_gym.cli.main:app`` (typer's own markdown generator);
* ``reference/scenario-yaml.md`` and ``reference/agent-yaml.md``: the JSON schema of
  ``autorl_gym.core.scenario.Scenario`` and ``autorl_gym.agents.spec.AgentSpec``, as tables;
* ``reference/attacks.md``: every registered attack of the suite (``autorl_gym.attacks``);
* ``reference/environment.md``: ``autorl_gym.core.envvars.ENV_VARS``, and the knobs the agents' training
  scripts read (``train_env``), found in the scripts' source;
* ``scenarios/<id>.md``: one page per shipped scenario YAML;
* ``reference/api/<module>.md``: one mkdocstrings page per module in :data:`API_MODULES`.

The nav in mkdocs.yml names three placeholders that :func:`on_config` expands: SCENARIO_PAGES,
API_PAGES and SECURITY_PAGES (``security/index.md``, then every other ``docs/security/*.md``).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import yaml
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "autorl_gym"
DOCS = ROOT / "docs"

API_MODULES = [
    "autorl_gym.envs.autorl_env",
    "autorl_gym.episode",
    "autorl_gym.episode.tools",
    "autorl_gym.core.scenario",
    "autorl_gym.core.family",
    "autorl_gym.core.sandbox",
    "autorl_gym.core.records",
    "autorl_gym.core.run_folder",
    "autorl_gym.core.registry",
    "autorl_gym.core.envvars",
    "autorl_gym.scenarios.catalog",
    "autorl_gym.sandbox.registry",
    "autorl_gym.sandbox.conformance",
    "autorl_gym.agents.spec",
    "autorl_gym.agents.loop",
    "autorl_gym.grading.grader",
    "autorl_gym.interactive",
    "autorl_gym.judge",
    "autorl_gym.server.client",
    "autorl_gym.sweep",
    "autorl_gym.report",
    "autorl_gym.integrations.trl",
    "autorl_gym.report.atif",
]


# the hand-written page of each task family (a family without one fails the build)
FAMILY_PAGES = {
    "arith": "tasks/micro-arith.md",
    "gsm8k": "tasks/gsm8k.md",
    "humaneval": "tasks/humaneval.md",
    "alpacaeval": "tasks/alpacaeval.md",
    "textworld": "tasks/text-games.md",
    "alfworld": "tasks/text-games.md",
    "deepsearchqa": "tasks/deepsearch.md",
    "micro_deepsearch": "tasks/deepsearch.md",
    "webshop": "tasks/webshop.md",
    "micro_webshop": "tasks/webshop.md",
}


# ---------------------------------------------------------------------------------------- nav
def _scenarios() -> dict[str, Any]:
    from autorl_gym.scenarios.catalog import discover

    cat = discover([PACKAGE / "scenarios"])
    if cat.errors:
        raise RuntimeError(f"shipped scenarios that do not load: {cat.errors}")
    return dict(sorted(cat.scenarios.items()))


def _security_pages() -> list[str]:
    others = sorted(p.name for p in (DOCS / "security").glob("*.md") if p.name != "index.md")
    return ["security/index.md", *(f"security/{name}" for name in others)]


def _expand(nav: Any) -> Any:
    placeholders = {
        "SCENARIO_PAGES": lambda: [{sid: f"scenarios/{sid}.md"} for sid in _scenarios()],
        "API_PAGES": lambda: [{mod: f"reference/api/{mod}.md"} for mod in API_MODULES],
        "SECURITY_PAGES": _security_pages,
    }
    if isinstance(nav, list):
        return [_expand(item) for item in nav]
    if isinstance(nav, dict):
        return {k: placeholders[v]() if isinstance(v, str) and v in placeholders else _expand(v)
                for k, v in nav.items()}
    return nav


def on_config(config: Any) -> Any:
    config["nav"] = _expand(config["nav"])
    return config


# ---------------------------------------------------------------------------------- generators
def cli_page() -> str:
    import typer
    from typer.cli import get_docs_for_click

    from autorl_gym.cli.main import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    body = get_docs_for_click(obj=command, ctx=ctx, name="autorl-gym", title="CLI reference")
    note = ("*Generated from the typer app `autorl_gym.cli.main:app` at build time; "
            "`autorl-gym COMMAND --help` prints the same.*\n\n")
    head, _, rest = body.partition("\n")
    return f"{head}\n\n{note}{rest}"


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    if "allOf" in prop:
        return " and ".join(_type_of(p) for p in prop["allOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop and prop["additionalProperties"] is not True:
        return f"map of {_type_of(prop['additionalProperties'])}"
    return kind


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _object_table(name: str, schema: dict[str, Any], level: str) -> list[str]:
    lines = [f"{level} {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, prop in schema.get("properties", {}).items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        lines.append(f"| `{field}` | {_cell(_type_of(prop))} | {'yes' if field in required else ''} "
                     f"| {_cell(default)} | {_cell(prop.get('description', ''))} |")
    extra = "refused" if schema.get("additionalProperties") is False else "allowed"
    return [*lines, "", f"Unknown fields: {extra}.", ""]


def schema_page(title: str, model: Any, intro: str) -> str:
    schema = model.model_json_schema()
    lines = [f"# {title}", "", intro, "",
             f"*Generated at build time from the pydantic model `{model.__module__}.{model.__name__}`'s "
             "JSON schema.*", ""]
    lines += _object_table(schema.get("title", model.__name__), schema, "##")
    for name, sub in sorted(schema.get("$defs", {}).items()):
        if sub.get("type") == "object" or "properties" in sub:
            lines += _object_table(name, sub, "###")
        else:
            lines += [f"### {name}", "", f"{_cell(_type_of(sub))}. {_cell(sub.get('description', ''))}", ""]
    lines += ["## The JSON schema", "", '??? note "JSON schema"', "",
              *("    " + line for line in ["```json", *json.dumps(schema, indent=2).splitlines(), "```"]),
              ""]
    return "\n".join(lines)


def script_knobs() -> list[tuple[str, str, str]]:
    """(variable, default, script) for every ``os.environ.get("X", default)``, ``os.environ["X"]``
    and ``knob("X", default)`` in the agents' training scripts (they run inside the sandbox)."""
    rows: dict[tuple[str, str], set[str]] = {}
    # deadline.py: the time limit every script of the scripted agent keeps to (written beside it)
    for script in sorted([*PACKAGE.glob("agents/*/train_*.py"), PACKAGE / "agents/scripted/deadline.py"]):
        for node in ast.walk(ast.parse(script.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if ast.unparse(node.func) not in ("os.environ.get", "knob"):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            default = ast.unparse(node.args[1]).strip("'\"") if len(node.args) > 1 else ""
            rows.setdefault((first.value, default), set()).add(f"`{script.parent.name}/{script.name}`")
    return sorted((name, default, ", ".join(sorted(scripts))) for (name, default), scripts in rows.items())


def environment_page() -> str:
    from autorl_gym.core.envvars import ENV_VARS

    lines = ["# Environment variables", "",
             "*Generated at build time from `autorl_gym.core.envvars.ENV_VARS` (a test checks that list "
             "against every variable the package's source reads) and from the agents' training "
             "scripts.*", ""]
    for side, title, intro in (
            ("host", "Read on the host", "Set these where you run `autorl-gym` or `gym.make`."),
            ("sandbox", "Inside the sandbox",
             "Set by the episode for the agent's code (an agent reads them; the host's keys and "
             "the package's settings are never among them).")):
        lines += [f"## {title}", "", intro, "", "| variable | default | what | read (or set) in |",
                  "|---|---|---|---|"]
        lines += [f"| `{v.name}` | {_cell(v.default)} | {_cell(v.purpose)} | `{_cell(v.read_in)}` |"
                  for v in ENV_VARS if v.side == side]
        lines.append("")
    lines += ["## Training-script knobs (`train_env`)", "",
              "The scripted agent's training scripts (and the example shell agent's copy of "
              "`train_sft.py`) read these inside the sandbox; pass them with "
              "`--agent-option 'train_env={NAME: value}'`. Found in the scripts' source "
              "(`os.environ.get(NAME, default)` and `knob(NAME, default)` calls).", "",
              "| variable | default | script |", "|---|---|---|"]
    episode_set = {v.name for v in ENV_VARS if v.side == "sandbox"}
    lines += [f"| `{name}` | {f'`{_cell(default)}`' if default else 'unset'} | {scripts} |"
              for name, default, scripts in script_knobs() if name not in episode_set]
    return "\n".join(lines) + "\n"


def scenario_page(sid: str, scenario: Any) -> str:
    path = Path(scenario.source_file)
    family = scenario.task_family
    lines = [f"# {sid}", "", f"**{scenario.title}**", "",
             f"*Generated at build time from `{path.relative_to(ROOT)}`.* The task family's page: "
             f"[{family}](../{_family_page(family)}).", "",
             "| field | value |", "|---|---|",
             f"| level | {scenario.level} |",
             f"| task family | `{family}` |",
             f"| base model | `{scenario.base_model}` |",
             f"| metric | `{scenario.metric}` |",
             f"| data source | `{scenario.data.source}` |",
             f"| feedback split | `{scenario.feedback_split}` |",
             f"| budget | {scenario.budget.seconds:g} s, {scenario.budget.max_steps} steps, "
             f"{scenario.budget.max_submissions} submissions |",
             f"| grader backend | `{scenario.grader.backend}` |", ""]
    if scenario.reference_baseline:
        ref = scenario.reference_baseline
        lines += [f"Published reference baseline: {ref.score} ({ref.protocol}).", ""]
    lines += ["## The task the agent reads", "", "```text", scenario.task.strip(), "```", "",
              "## The scenario file", "", "```yaml", path.read_text().rstrip(), "```", ""]
    return "\n".join(lines)


def _family_page(family: str) -> str:
    if family not in FAMILY_PAGES:
        raise RuntimeError(f"task family {family!r} has no page: add one to docs/tasks/ and to "
                           "FAMILY_PAGES in docs/hooks.py")
    return FAMILY_PAGES[family]


def families_table() -> str:
    from autorl_gym.core.family import get_family

    by_family: dict[str, list[str]] = {}
    for sid, scenario in _scenarios().items():
        by_family.setdefault(scenario.task_family, []).append(sid)
    lines = ["| family | kind | metrics | data sources | scenarios | what |", "|---|---|---|---|---|---|"]
    for name, sids in sorted(by_family.items()):
        fam = get_family(name)
        page = _family_page(name)
        links = ", ".join(f"[{sid}](/{'scenarios/' + sid + '.md'})" for sid in sids)
        lines.append(f"| [`{name}`](/{page}) | {fam.kind} | {', '.join(fam.metrics)} | "
                     f"{', '.join(fam.data_sources)} | {links} | {_cell(fam.description)} |")
    return "\n".join(lines)


def scenarios_table() -> str:
    lines = ["| id | level | family | base model | metric | budget |", "|---|---|---|---|---|---|"]
    for sid, sc in _scenarios().items():
        lines.append(f"| [`{sid}`](/scenarios/{sid}.md) | {sc.level} | "
                     f"[`{sc.task_family}`](/{_family_page(sc.task_family)}) | `{sc.base_model}` | "
                     f"`{sc.metric}` | {sc.budget.seconds:g} s |")
    return "\n".join(lines)


MARKERS = {"<!-- generated:families -->": families_table, "<!-- generated:scenarios -->": scenarios_table}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace the generated-table markers; links written /docs-path are made page-relative."""
    for marker, make in MARKERS.items():
        if marker in markdown:
            depth = page.file.src_uri.count("/")
            table = make().replace("](/", "](" + "../" * depth)
            markdown = markdown.replace(marker, "*Generated at build time from the shipped "
                                        "scenario files and the task-family registry.*\n\n" + table)
    return markdown


def api_page(module: str) -> str:
    return (f"# `{module}`\n\n*Generated at build time by mkdocstrings from the module's "
            f"docstrings and signatures.*\n\n::: {module}\n")


def attacks_page() -> str:
    """Every registered attack of the suite (``autorl_gym.attacks.cases``), by class."""
    from autorl_gym.attacks.base import load_cases

    lines = ["# The attack suite", "",
             "*Generated at build time from the attack registry (`autorl_gym/attacks/cases/`).*", "",
             "`autorl-gym attacks run [--scenario ID] [--sandbox KIND] [--only NAME]` runs every "
             "attack below that applies to the scenario's task family and the sandbox kind against "
             "a real episode (or the real part under attack), and prints held, broken, skipped or "
             "error per attack; it exits 1 when one breaks. `tests/test_attacks.py` runs it on every "
             "registered sandbox kind. See [the security model](../security/index.md).", "",
             "| attack | class | task families | sandbox kinds | what it tries |", "|---|---|---|---|---|"]
    for a in sorted(load_cases().values(), key=lambda a: (a.klass, a.name)):
        lines.append(f"| `{a.name}` | {a.klass} | {', '.join(a.families or ('all',))} | "
                     f"{', '.join(a.sandboxes or ('all',))} | {_cell(a.description)} |")
    return "\n".join(lines) + "\n"


def generated_pages() -> dict[str, str]:
    from autorl_gym.agents.spec import AgentSpec
    from autorl_gym.core.scenario import Scenario

    pages = {
        "reference/cli.md": cli_page(),
        "reference/scenario-yaml.md": schema_page(
            "Scenario YAML", Scenario,
            "One YAML file per scenario (`autorl_gym/scenarios/*.yaml`, more folders through "
            "`AUTORL_GYM_SCENARIOS`) is loaded into this model; a broken file is reported with its "
            "path and the offending field. Each [scenario page](../tasks/index.md#scenarios) shows "
            "a complete file."),
        "reference/agent-yaml.md": schema_page(
            "agent.yaml", AgentSpec,
            "`agents/<name>/agent.yaml` describes an agent: a Python class (`entry`) or a command "
            "started in the sandbox (`start`), optionally a command-line coding agent (`cli`), "
            "resumed when it stops early (`reprompt`, `resume`: see [budget-aware agents]"
            "(../agents/cli-agents.md#budget-aware-agents-reprompt-and-autorl-timer)). "
            "See [Agents](../agents/index.md)."),
        "reference/environment.md": environment_page(),
        "reference/attacks.md": attacks_page(),
    }
    for sid, scenario in _scenarios().items():
        pages[f"scenarios/{sid}.md"] = scenario_page(sid, scenario)
    for module in API_MODULES:
        pages[f"reference/api/{module}.md"] = api_page(module)
    return pages


def on_files(files: Files, config: Any) -> Files:
    for src_uri, content in generated_pages().items():
        files.append(File.generated(config, src_uri, content=content))
    return files


if __name__ == "__main__":  # print the generated pages' names (a quick check without mkdocs)
    for name, text in generated_pages().items():
        print(f"{name}: {len(text)} characters")
    print(yaml.safe_dump({"security": _security_pages()}))
