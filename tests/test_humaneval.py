"""AutoRL-HumanEval-v0 through the task-family seam: the scenario and its checks, prompts and
scoring by the family, the hf and lm_eval backends compared item by item on the micro model,
and a whole episode through the CLI with the micro model as base (a score of 0 is expected:
the pipeline is what is tested). Real data from ``$AUTORL_GYM_DATA_DIR/humaneval/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_humaneval_data import DEV_SEED, DEV_SIZE, real_data_dir
from typer.testing import CliRunner

from autorl_gym.core.family import GradeContext, api_fields, get_family, resolve_assets
from autorl_gym.core.scenario import Scenario, ScenarioError
from autorl_gym.grading.grader import Grader
from autorl_gym.scenarios.catalog import get_scenario, load_scenario_file
from autorl_gym.tasks.humaneval.family import HumanEvalTask

HE_ID = "AutoRL-HumanEval-v0"
SCENARIO_FILE = Path(__file__).resolve().parents[1] / "autorl_gym" / "scenarios" / "humaneval.yaml"
QUICK_ID = "AutoRL-HumanEval-Quick-v0"
QUICK_TOKENS = 16  # the micro model never stops by itself; 1024 tokens per problem is CPU-hours


@pytest.fixture(scope="module")
def he_env(tmp_path_factory: pytest.TempPathFactory, micro_assets):
    """The real data, and a private cache (splits, baselines) that reuses the shared micro
    model through a link (so ``micro:arith`` resolves without a rebuild)."""
    root = real_data_dir()
    cache = tmp_path_factory.mktemp("he_cache")
    (cache / "micro").symlink_to(Path(micro_assets.model_dir).parents[1], target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTORL_GYM_DATA_DIR", str(root))
        mp.setenv("AUTORL_GYM_CACHE", str(cache))
        yield root


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return get_scenario(HE_ID)


def quick_yaml(tmp: Path, **grader) -> Path:
    """humaneval.yaml as shipped, with a short generation (and grader settings) for a CPU."""
    raw = yaml.safe_load(SCENARIO_FILE.read_text())
    raw["id"] = QUICK_ID
    raw["protocol"]["max_new_tokens"] = QUICK_TOKENS
    raw["grader"].update(grader)
    path = tmp / "humaneval_quick.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_scenario_is_registered_with_its_family(scenario: Scenario) -> None:
    assert scenario.task_family == "humaneval" and scenario.level == 1
    assert scenario.metric == "pass@1" and scenario.base_model == "Qwen/Qwen2.5-1.5B-Instruct"
    assert isinstance(get_family("humaneval"), HumanEvalTask)
    assert scenario.data.dev_size == DEV_SIZE and scenario.data.dev_seed == DEV_SEED
    assert scenario.protocol.stop == ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
    assert scenario.protocol.chat_template is False and scenario.protocol.few_shot == 0
    fields = api_fields(scenario)
    assert fields["metric"] == "pass@1" and "openai/openai_humaneval" in fields["train_data_path"]


@pytest.mark.parametrize(("change", "message"), [
    ({"metric": "accuracy"}, "field 'metric'"),
    ({"data": {"source": "gsm8k", "dev_size": 32}}, "field 'data.source'"),
    ({"data": {"source": "humaneval", "dev_size": 82}}, "field 'data.dev_size'"),
    ({"protocol": {"prompt_template": "Question: {question}"}}, "must contain '{prompt}'"),
    ({"protocol": {"prompt_template": "{prompt}", "few_shot": 3, "filter": "execution"}},
     "field 'protocol.few_shot'"),
    ({"protocol": {"prompt_template": "{prompt}", "chat_template": True, "filter": "execution"}},
     "field 'protocol.chat_template'"),
    ({"protocol": {"prompt_template": "{prompt}"}}, "field 'protocol.filter'"),
])
def test_bad_combinations_name_the_field(tmp_path: Path, change: dict, message: str) -> None:
    raw = yaml.safe_load(SCENARIO_FILE.read_text()) | change
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario_file(path)
    assert str(path) in str(err.value)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, he_env) -> Scenario:
    return load_scenario_file(quick_yaml(tmp_path_factory.mktemp("quick")))


@pytest.fixture(scope="module")
def assets(micro_assets, quick: Scenario):
    return resolve_assets(quick, base_model="micro:arith", progress=False)


def test_assets_keep_hidden_splits_out_of_the_mount(assets) -> None:
    assert sorted(p.name for p in assets.train_dir.iterdir()) == ["train.jsonl"]
    for split in ("dev", "test"):
        assert not assets.hidden_splits[split].is_relative_to(assets.train_dir)
    assert assets.train_data_path == assets.train_dir / "train.jsonl"


def test_family_prompts_and_scores(quick: Scenario, assets) -> None:
    ctx = GradeContext(quick, assets)
    fam = ctx.family
    dev, test = ctx.items("dev"), ctx.items("test")
    assert (len(ctx.items("train")), len(dev), len(test)) == (82 - DEV_SIZE, DEV_SIZE, 82)
    assert all(fam.prompt(ctx, it) == it.prompt for it in dev)  # the raw prompt
    items = list(dev[:6])
    right = fam.score(ctx, items, [it.canonical_solution for it in items])
    assert [r.correct for r in right] == [True] * 6 and {r.answer for r in right} == {"passed"}
    wrong = fam.score(ctx, items, ["    return None\n"] * 3 + ["    while True: pass\n"]
                      + ["    import os\n    os._exit(0)\n", "  return (\n"])
    assert [r.correct for r in wrong] == [False] * 6
    assert wrong[3].details["status"] == "timeout" and wrong[4].answer == "exited_early"
    assert wrong[5].answer == "syntax_error"
    metrics = fam.summary_metrics(wrong)
    assert metrics["failed_timeout"] == pytest.approx(100 / 6)
    assert all(r.details["task_id"] == it.task_id for r, it in zip(wrong, items, strict=True))


def test_hf_and_lm_eval_agree_item_by_item(quick: Scenario, assets, micro_assets,
                                           tmp_path: Path) -> None:
    """The same items, prompts and stop sequences: identical completions and scores, and
    lm-eval's context is exactly the family's prompt."""
    n = 4
    hf = Grader(quick, assets, backend="hf").evaluate(micro_assets.model_dir, "dev", limit=n)
    lm_dir = tmp_path / "lm_eval"
    lm = Grader(quick, assets, backend="lm_eval").evaluate(micro_assets.model_dir, "dev",
                                                                limit=n, log_dir=lm_dir)
    assert (hf.n, lm.n) == (n, n)
    assert [i.completion for i in lm.items] == [i.completion for i in hf.items]
    assert [i.correct for i in lm.items] == [i.correct for i in hf.items]
    assert lm.score == hf.score
    samples = [json.loads(line) for line in (lm_dir / "samples.jsonl").read_text().splitlines()]
    items = GradeContext(quick, assets).items("dev", n)
    assert [s["arguments"][0][0] for s in sorted(samples, key=lambda s: s["doc_id"])] \
        == [it.prompt for it in items]
    task_yaml = next((lm_dir / "task").glob("*.yaml")).read_text()
    assert "unsafe_code" not in task_yaml and "pass_at_k" not in task_yaml  # no code in lm-eval
    assert "lm_eval_exact_match_canonical" in lm.metrics


@pytest.mark.slow
def test_cli_episode_with_the_micro_model(micro_assets, he_env, tmp_path: Path) -> None:
    """``autorl-gym run`` on HumanEval with the micro model as base and the stock scripted agent
    (its SFT script trains on the visible prompts and canonical solutions): baseline, one
    submission graded on dev, the final test grading, every completion through the sandboxed
    executor."""
    import gymnasium as gym

    from autorl_gym.cli.main import app
    from autorl_gym.scenarios.catalog import catalog, register_all

    quick_yaml(tmp_path)  # registered as a scenario folder: gym.make needs an id
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTORL_GYM_SCENARIOS", str(tmp_path))
        register_all()
    try:
        res = CliRunner().invoke(app, [
            "run", "--env", QUICK_ID, "--agent", "scripted", "--base-model", "micro:arith",
            "--results-dir", str(tmp_path / "results"), "--workspace-root", str(tmp_path / "ws"),
            "--agent-option", "train_env={SFT_MAX_STEPS: 4, SFT_BATCH: 4, SFT_MAX_LENGTH: 512}",
            "--agent-option", "train_timeout_s=600"])
    finally:
        gym.registry.pop(QUICK_ID, None)
        catalog(refresh=True)
    assert res.exit_code == 0, res.output
    runs = list((tmp_path / "results").glob(f"{QUICK_ID}_*"))
    assert len(runs) == 1
    fb = json.loads((runs[0] / "feedback.json").read_text())
    assert fb["status"] == "finished", fb
    assert fb["valid_submissions"] == 1 and fb["submissions"] == 1
    assert fb["baseline"] == 0.0 and fb["score"] >= 0.0 and fb["metric"] == "pass@1"
    assert fb["protocol"]["executor"]["sandbox"] == "local"
    sub = json.loads((runs[0] / "submissions.jsonl").read_text().splitlines()[0])
    assert sub["error"] is None and sub["kind"] == "full" and sub["split"] == "dev"
    for name in ("test_items.json", "baseline_test_items.json"):  # graded by the executor
        items = json.loads((runs[0] / name).read_text())
        assert len(items) == 82 and {i["details"]["task_id"] for i in items} == \
            {f"HumanEval/{n}" for n in range(82, 164)}
        assert all(i["details"]["status"] and i["details"]["reason"] for i in items)
    steps = [json.loads(line) for line in (runs[0] / "trajectory.jsonl").read_text().splitlines()]
    train = next(s for s in steps if s.get("call", {}).get("tool") == "run")
    assert "50 training examples" in train["observation"]  # data/ is the visible split only
