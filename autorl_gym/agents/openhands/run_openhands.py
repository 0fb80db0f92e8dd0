"""OpenHands' runner inside the sandbox, run by the agent's own Python 3.12 (agent-python).

The openhands-sdk agent with its terminal (a plain subprocess shell) and file-editor tools,
acting in the workspace as this (unprivileged) user; the task is the workspace's instructions
file; the model is ``$LLM_MODEL`` behind the run's LLM gateway (``ANTHROPIC_BASE_URL`` or
``OPENAI_BASE_URL``, the key being the run's token), reached by LiteLLM. Every event of the
conversation goes to .cli/events.jsonl as it happens (saved in the results).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from openhands.sdk import LLM, Agent, Conversation, Tool
from openhands.tools.file_editor import FileEditorTool
from openhands.tools.terminal import TerminalTool
from pydantic import SecretStr


def llm() -> LLM:
    model = os.environ["LLM_MODEL"]
    provider = "anthropic" if os.environ.get("ANTHROPIC_BASE_URL") else "openai"
    name = f"{provider}/{model}"
    url, key = os.environ[f"{provider.upper()}_BASE_URL"], os.environ[f"{provider.upper()}_API_KEY"]
    return LLM(model=name, base_url=url, api_key=SecretStr(key), usage_id="agent", num_retries=3)


def main() -> int:
    workspace = Path(os.environ.get("WORKSPACE") or os.getcwd())
    task = (workspace / os.environ.get("INSTRUCTIONS_FILE", "AGENTS.md")).read_text(encoding="utf-8")
    log = (workspace / ".cli" / "events.jsonl").open("w", encoding="utf-8")

    def record(event: object) -> None:
        log.write(event.model_dump_json() + "\n")  # type: ignore[attr-defined]
        log.flush()

    timeout = int(os.environ.get("COMMAND_TIMEOUT", "1800"))
    agent = Agent(llm=llm(), tools=[
        Tool(name=TerminalTool.name, params={"terminal_type": "subprocess",
                                             "no_change_timeout_seconds": timeout}),
        Tool(name=FileEditorTool.name),
    ])
    conversation = Conversation(agent=agent, workspace=str(workspace), callbacks=[record],
                                max_iteration_per_run=int(os.environ.get("MAX_ITERATIONS", "300")),
                                visualizer=None, persistence_dir=None)
    conversation.send_message(task)
    conversation.run()
    state = conversation.state
    status = str(getattr(state, "execution_status", "?"))
    metrics = agent.llm.metrics
    summary = {"status": status, "accumulated_cost": metrics.accumulated_cost if metrics else None}
    print("openhands ended: " + json.dumps(summary))
    log.close()
    return 0 if "finished" in status.lower() else 1


if __name__ == "__main__":
    sys.exit(main())
