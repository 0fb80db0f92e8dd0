"""Gymnasium's ``check_env`` on every registered scenario whose assets can be built here.

Offline, a scenario gets: its real data where this machine has it (``conftest.shared_data``: the
first GSM8K items, HumanEval, ALFWorld's one shared game laid out as every split; never the
hub; WebShop's fixture catalogue in its own layout), and the micro model as base model when its
own is a hub id (Qwen cannot be downloaded here). A scenario whose base model is replaced is
graded with short generations and rollouts: its scores mean nothing with the micro model, and the
env's API is what is checked. A scenario whose assets still cannot be built is skipped with the
reason, and fails under CI, which has the shared data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from conftest import shared_data, shared_data_root, skip_or_fail, skip_or_fail_without_bwrap
from gymnasium.utils.env_checker import check_env

from autorl_gym.core.family import resolve_assets
from autorl_gym.core.sandbox import SandboxUnavailable
from autorl_gym.core.scenario import Scenario, ScenarioError
from autorl_gym.scenarios.catalog import catalog

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _gsm8k(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """The first real GSM8K items (the full test split would take the micro model an hour)."""
    real = shared_data("gsm8k", "train.jsonl", "test.jsonl")
    folder = tmp_path / "data" / "gsm8k"
    folder.mkdir(parents=True)
    for split, n in (("train", 40), ("test", 8)):
        lines = (real / f"{split}.jsonl").read_text().splitlines()[:n]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(folder.parent))
    return sc.model_copy(update={"data": sc.data.model_copy(update={"dev_size": 8})})


def _humaneval(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """The real file ($AUTORL_GYM_DATA_DIR is already its root), never the hub."""
    shared_data("humaneval", "HumanEval.jsonl.gz")
    return sc


def _alfworld(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    from test_interactive_sandbox import one_game_alfworld

    data, _ = one_game_alfworld(tmp_path)  # the one real game as train, dev and test split
    monkeypatch.setenv("ALFWORLD_DATA", str(data))
    return sc


def _alpacaeval(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """The fixture data in the datasets' own formats, judged by the scripted judge (no judge
    endpoint can be reached from here)."""
    from alpaca_helpers import micro_alpaca_scenario
    from judge_server import ScriptedJudge

    judge = ScriptedJudge().start()
    _JUDGES.append(judge)
    shortened = micro_alpaca_scenario(tmp_path, judge.base_url)
    return sc.model_copy(update={k: getattr(shortened, k) for k in ("data", "judge", "protocol")})


def _deepsearchqa(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """No real DeepSearchQA data here: the 12-question fixture in the dataset's own format with
    its folder of documents for BM25, judged by the scripted judge."""
    from judge_server import ScriptedJudge

    judge = ScriptedJudge().start()
    _JUDGES.append(judge)
    fixture = Path(__file__).parent / "data" / "deepsearchqa"
    search = {**sc.task_options["search"], "documents": str(fixture / "docs")}
    assert sc.judge is not None
    return sc.model_copy(update={
        "data": sc.data.model_copy(update={"path": fixture / "DSQA-full.csv", "dev_size": 2}),
        "task_options": {**sc.task_options, "search": search},
        "judge": sc.judge.model_copy(update={"base_url": judge.base_url, "api_key_env": None})})


def _webshop(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """The fixture catalogue in WebShop's own layout (no real WebShop data here), its 8 sessions
    split as test_webshop_env splits them."""
    from test_webshop_env import FIXTURE, fixture_scenario

    monkeypatch.setenv("WEBSHOP_DATA", str(FIXTURE))
    fx = fixture_scenario()
    return sc.model_copy(update={"data": fx.data, "interactive": fx.interactive})


_JUDGES: list[Any] = []  # stopped after each test


@pytest.fixture(autouse=True)
def _stop_judges():
    yield
    while _JUDGES:
        _JUDGES.pop().stop()


# How a family's assets are built here from the shared data (skipped without it, failed in CI).
OFFLINE_DATA: dict[str, Callable[[Scenario, Path, pytest.MonkeyPatch], Scenario]] = {
    "gsm8k": _gsm8k, "humaneval": _humaneval, "alfworld": _alfworld, "alpacaeval": _alpacaeval,
    "deepsearchqa": _deepsearchqa,
    "webshop": _webshop}


def _on_the_hub(base_model: str) -> bool:
    return not base_model.startswith("micro:") and not Path(base_model).expanduser().exists()


def _shortened(sc: Scenario) -> Scenario:
    """Grading kept short for the micro model: zero-shot prompts, a few new tokens, a few steps
    per game."""
    if sc.interactive is not None:
        return sc.model_copy(update={"interactive": sc.interactive.model_copy(
            update={"max_steps": min(sc.interactive.max_steps, 3),
                    "max_new_tokens": min(sc.interactive.max_new_tokens, 4)})})
    return sc.model_copy(update={"protocol": sc.protocol.model_copy(
        update={"max_new_tokens": min(sc.protocol.max_new_tokens, 4), "few_shot": 0})})


@pytest.mark.parametrize("scenario_id", sorted(catalog().scenarios))
def test_check_env(scenario_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   micro_assets) -> None:
    sc = catalog().scenarios[scenario_id]
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # a hub fallback fails at once
        monkeypatch.setenv(var, "1")
    if shared_data_root().is_dir():
        monkeypatch.setenv("AUTORL_GYM_DATA_DIR", str(shared_data_root()))
    if sc.task_family in OFFLINE_DATA:
        sc = OFFLINE_DATA[sc.task_family](sc, tmp_path, monkeypatch)
    kwargs: dict[str, Any] = {}
    if _on_the_hub(sc.base_model):
        kwargs["base_model"] = str(micro_assets.model_dir)
        sc = _shortened(sc)
    try:
        resolve_assets(sc, kwargs.get("base_model"), progress=False)
    except ScenarioError as e:
        skip_or_fail(f"{scenario_id}: its assets cannot be built here: {e}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(scenario_id, scenario=sc, workspace_root=tmp_path / "ws",
                       results_dir=tmp_path / "results", **kwargs)
    try:
        check_env(env.unwrapped, skip_render_check=False)
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
    finally:
        env.close()
    assert list((tmp_path / "ws").iterdir()), "check_env made no episode"
