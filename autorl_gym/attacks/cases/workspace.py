"""Attacks on the host-side readers of the workspace: the agent makes links and names that the
code history, recorder, report and export would follow or turn into patterns."""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

from autorl_gym.attacks.base import AttackBroken, AttackContext, attack


def _history_text(results_dir: Path, patches_only: bool = False) -> str:
    """The code history as text: commit messages (which quote the agent's commands) and patches."""
    from autorl_gym.episode.code_history import GIT_DIR_NAME, read_history

    git_dir = results_dir / GIT_DIR_NAME
    if not (git_dir / "HEAD").is_file():
        return ""
    return "\n".join(("" if patches_only else c["message"] + "\n") + c["patch"]
                     for c in read_history(git_dir))


def _events(results_dir: Path) -> list[str]:
    from autorl_gym.core.integrity import read_events

    return [e.kind for e in read_events(results_dir)]


def _hidden_split(ctx: AttackContext) -> Path:
    from autorl_gym.core.family import resolve_assets
    from autorl_gym.scenarios.catalog import get_scenario

    assets = resolve_assets(get_scenario(ctx.scenario_id), progress=False)
    return next(iter(assets.hidden_splits.values()))


@attack(klass="workspace")
def code_dir_links_to_grader_cache(ctx: AttackContext) -> str:
    """The agent replaces code/ by a link next to the base model (readlink model) where the
    hidden dev and test splits live, so the code history commits them."""
    hidden = _hidden_split(ctx)
    # a line of the hidden split the history must never hold
    secret = next(line for line in hidden.read_text().splitlines() if line.strip())[:60]
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        results = Path(info["results_dir"])
        # the agent needs only `readlink model`: the grader's cache is its parent's parent
        env.step({"tool": "run", "command":
                  'rm -rf code && ln -s "$(dirname "$(readlink model)")" code && ls code'})
        env.step({"tool": "run", "command": "echo again"})
        text = _history_text(results)
        if secret in text or hidden.name in text:
            raise AttackBroken(f"the code history holds the hidden split {hidden.name} "
                               f"(committed through the code/ link)")
        if "workspace.link_refused" not in _events(results):
            raise AttackBroken("the code/ link was not followed but no integrity event records it")
        return "code/ as a link is refused (workspace.link_refused); no hidden item in the history"


@attack(klass="workspace")
def code_dir_links_to_host_file(ctx: AttackContext) -> str:
    """code/ becomes a link to a host folder outside the sandbox: the host would copy what it
    can read there into the results folder."""
    host_dir = ctx.scratch / "host-secrets"
    host_dir.mkdir(parents=True, exist_ok=True)
    secret = f"host-secret-{uuid.uuid4().hex}"
    (host_dir / "key.txt").write_text(secret)
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        results = Path(info["results_dir"])
        env.step({"tool": "run", "command":
                  f"rm -rf code && ln -s {shlex.quote(str(host_dir.resolve()))} code; echo linked"})
        leaked = [p for p in results.rglob("*") if p.is_file() and not p.is_symlink()
                  and secret.encode() in p.read_bytes()]
        if secret in _history_text(results) or leaked:
            raise AttackBroken(f"a host file reached the results folder: {leaked[:3]}")
        return "no host file reached the results folder"


@attack(klass="workspace")
def link_inside_code_to_host_file(ctx: AttackContext) -> str:
    """A link inside code/ to a host file: the history must keep no content of the target."""
    host = ctx.scratch / "host-file.txt"
    secret = f"host-secret-{uuid.uuid4().hex}"
    host.write_text(secret)
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        results = Path(info["results_dir"])
        env.step({"tool": "run", "command":
                  f"ln -s {shlex.quote(str(host.resolve()))} code/leak.txt; echo ok"})
        if secret in _history_text(results):
            raise AttackBroken("the target of a link in code/ was committed to the history")
        return "the link's target never reached the history"


@attack(klass="workspace")
def newline_name_hides_file(ctx: AttackContext) -> str:
    """A large file named with a newline writes a pattern into the code history's exclude file
    that hides another file (hidden.py) from the history."""
    marker = f"hidden-code-{uuid.uuid4().hex[:12]}"
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        results = Path(info["results_dir"])
        env.step({"tool": "run", "command":
                  "cd code && head -c 1100000 /dev/zero > \"$(printf 'x\\nhidden.py')\" && "
                  f"echo 'print(\"{marker}\")' > hidden.py && ls"})
        text = _history_text(results, patches_only=True)
        if marker not in text:
            raise AttackBroken("code/hidden.py is missing from the code history: a file name "
                               "became an exclude pattern")
        return "hidden.py is in the history; the newline name became no pattern"


@attack(klass="workspace")
def control_characters_in_command_blind_history(ctx: AttackContext) -> str:
    """A command holding a NUL (or \\x01) goes into the code history's commit message: git
    cannot take a NUL as an argument (the history would stop recording for the rest of the
    episode) and \\x01 splits read_history's records (a forged patch in the report)."""
    marker = f"after-{uuid.uuid4().hex[:12]}"
    with ctx.env() as env:
        _, info = env.reset(seed=0)
        results = Path(info["results_dir"])
        # both change code/, so both are committed with the command in the message
        env.step({"tool": "run", "command": "echo 1 > code/one.py # \x01+forged-patch-line"})
        env.step({"tool": "run", "command": "echo 2 > code/two.py # \x00"})
        env.step({"tool": "write_file", "path": "code/after.py", "content": f"print('{marker}')\n"})
        text = _history_text(results, patches_only=True)
        if marker not in text:
            raise AttackBroken("the code history stopped recording after a command with a NUL")
        if "+forged-patch-line" in text:
            raise AttackBroken("a \\x01 in a command forged a patch line in the code history")
        return "the history kept recording; control characters stayed in the message, escaped"
