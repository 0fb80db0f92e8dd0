"""Attacks by an agent's own folder: an external agent's folder is copied into the workspace (its
links followed) with the ``files:`` it names, so a link or a name there could carry host files,
such as the hidden splits, into the sandbox."""

from __future__ import annotations

from autorl_gym.attacks.base import AttackBroken, AttackContext, attack
from autorl_gym.attacks.cases.workspace import _hidden_split


@attack(klass="workspace")
def agent_folder_carries_hidden_split(ctx: AttackContext) -> str:
    """An agent folder names the hidden test split in ``files:`` (by a relative path out of the
    agents' folder) and holds a link to it; either would be copied into code/."""
    import os

    from autorl_gym.agents.spec import AgentError, load_agent_spec

    hidden = _hidden_split(ctx)
    agents = ctx.scratch / "agents"
    refused = []
    for name, files, link in (("by_name", [os.path.relpath(hidden, agents / "by_name")], False),
                              ("by_link", [], True)):
        folder = agents / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "agent.yaml").write_text(f"name: {name}\nstart: bash code/run.sh\nfiles: {files!r}\n")
        if link:
            (folder / "notes.txt").symlink_to(hidden)
        old = os.environ.get("AUTORL_GYM_AGENTS")
        os.environ["AUTORL_GYM_AGENTS"] = str(agents)
        try:
            load_agent_spec(name)
        except AgentError as e:
            refused.append(f"{name}: {str(e)[:80]}")
            continue
        finally:
            if old is None:
                os.environ.pop("AUTORL_GYM_AGENTS", None)
            else:
                os.environ["AUTORL_GYM_AGENTS"] = old
        raise AttackBroken(f"the agent folder {name!r} that reaches {hidden} was accepted")
    return "; ".join(refused)
