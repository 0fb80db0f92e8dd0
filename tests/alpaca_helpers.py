"""Test scenarios of AlpacaEval on the micro model, graded by the scripted judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autorl_gym.core.paths import PACKAGE_DIR
from autorl_gym.core.scenario import Scenario
from autorl_gym.scenarios.catalog import load_scenario_file

FIXTURES = Path(__file__).parent / "data" / "alpacaeval"


def micro_alpaca_scenario(tmp: Path, base_url: str, **overrides: Any) -> Scenario:
    """AutoRL-AlpacaEval-v0 with the micro model as base, the fixture data (24 prompts: 8 dev,
    16 test), short greedy answers and the judge at ``base_url``."""
    raw = yaml.safe_load((PACKAGE_DIR / "scenarios" / "alpacaeval.yaml").read_text())
    raw.update(id="AutoRL-AlpacaEval-Micro-Test-v0", base_model="micro:arith")
    raw["data"].update(path=str(FIXTURES), dev_size=8, dev_seed=7)
    raw["protocol"].update(chat_template=False, max_new_tokens=12,
                           prompt_template="Question: {instruction}\nAnswer:", stop=["\n\n"])
    raw["grader"].update(batch_size=24, memory_mb=8192, timeout_s=600)
    raw["judge"].update(model="scripted-judge", base_url=base_url, retries=1, concurrency=4,
                        timeout_s=10)
    raw["budget"] = {"seconds": 900, "max_steps": 30, "max_submissions": 5}
    raw["sandbox"] = {"memory_mb": 8192, "max_processes": 512, "default_timeout_s": 600,
                      "max_timeout_s": 900}
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        else:
            raw[section] = value
    path = tmp / "alpacaeval_micro.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_scenario_file(path)
