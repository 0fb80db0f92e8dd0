"""mini-swe-agent's runner inside the sandbox, run by the agent's own Python 3.12 (agent-python).

The task is the workspace's instructions file; the model is ``$LLM_MODEL`` behind the run's LLM
gateway (``OPENAI_BASE_URL``, the key being the run's token), reached by LiteLLM; every command
runs in the workspace as this (unprivileged) user. The trajectory goes to .cli/trajectory.json.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml
from minisweagent.agents.default import DefaultAgent
from minisweagent.config import builtin_config_dir
from minisweagent.environments.local import LocalEnvironment
from minisweagent.models import get_model


def main() -> int:
    workspace = Path(os.environ.get("WORKSPACE") or os.getcwd())
    task = (workspace / os.environ.get("INSTRUCTIONS_FILE", "AGENTS.md")).read_text(encoding="utf-8")
    config = yaml.safe_load((builtin_config_dir / "default.yaml").read_text())
    model_class = os.environ.get("MODEL_CLASS", "litellm_textbased")
    model = get_model(f"openai/{os.environ['LLM_MODEL']}", {
        **config.get("model", {}), "model_class": model_class,
        "model_kwargs": {"api_base": os.environ["OPENAI_BASE_URL"], "api_key": os.environ["OPENAI_API_KEY"],
                         "drop_params": True},
        "cost_tracking": "ignore_errors"})
    env = LocalEnvironment(**{**config.get("environment", {}), "cwd": str(workspace),
                              "timeout": int(os.environ.get("COMMAND_TIMEOUT", "1800"))})
    agent_config = {**config["agent"], "step_limit": int(os.environ.get("STEP_LIMIT", "300")),
                    "cost_limit": 0.0, "output_path": workspace / ".cli" / "trajectory.json"}
    if model_class != "litellm_textbased":  # the tool-calling model: mini.yaml's prompts
        mini = yaml.safe_load((builtin_config_dir / "mini.yaml").read_text())
        agent_config |= {k: mini["agent"][k] for k in ("system_template", "instance_template")}
    agent = DefaultAgent(model, env, **agent_config)
    result = agent.run(task)
    print(f"mini-swe-agent ended: {result.get('exit_status')} after {agent.n_calls} model calls")
    return 0 if result.get("exit_status") == "Submitted" else 1


if __name__ == "__main__":
    sys.exit(main())
