"""AutoRL-AlpacaEval-v0 on the micro model with the scripted judge: the data and its hidden
splits, the whole grading path in the grading child process (both orders, cache, malformed
verdicts, outage), and a whole episode."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from alpaca_helpers import FIXTURES, micro_alpaca_scenario
from judge_server import ScriptedJudge, longer

from autorl_gym.core.family import api_fields, resolve_assets
from autorl_gym.core.scenario import ScenarioError
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.isolation import GradingFailed
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.alpaca_data import load_local, materialize, read_eval_split


def unique_judge() -> str:
    """A judge model name no other test used: its verdicts and baselines are not cached yet."""
    return f"scripted-{uuid.uuid4().hex[:10]}"


def test_registered_scenario_names_its_judge_and_the_hidden_splits():
    sc = get_scenario("AutoRL-AlpacaEval-v0")
    assert sc.level == 2 and sc.metric == "lc_win_rate" and sc.protocol.chat_template
    assert sc.judge is not None and sc.judge.api_key_env == "AUTORL_GYM_JUDGE_API_KEY"
    assert sc.base_model == "Qwen/Qwen2.5-1.5B-Instruct" and sc.data.dev_size == 105
    assert "first 2,000 rows" in api_fields(sc)["train_data_path"]


def test_splits_are_seeded_disjoint_and_hidden(tmp_path):
    src = load_local(FIXTURES, "alpaca_eval_gpt4_baseline")
    assert len(src.train) == 40 and len(src.evaluation) == 24 and src.gamed_csv is None
    root, m = materialize(src, "alpaca_eval_gpt4_baseline", 8, 7, root=tmp_path)
    again, _ = materialize(src, "alpaca_eval_gpt4_baseline", 8, 7, root=tmp_path)
    assert again == root and m.sizes == {"train": 40, "dev": 8, "test": 16}
    dev, test = (read_eval_split(root / "hidden" / f"{s}.jsonl") for s in ("dev", "test"))
    assert [r.index for r in dev] == m.dev_indices and not {r.index for r in dev} & {r.index for r in test}
    assert sorted(r.index for r in dev + test) == list(range(24))
    assert sorted(p.name for p in (root / "train").iterdir()) == ["train.jsonl"]
    train = (root / "train" / "train.jsonl").read_text()
    assert all(r.output not in train and r.instruction not in train for r in dev + test)
    other, _ = materialize(src, "alpaca_eval_gpt4_baseline", 8, 8, root=tmp_path)
    assert read_eval_split(other / "hidden" / "dev.jsonl") != dev


def test_train_rows_that_repeat_an_evaluation_prompt_are_dropped(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(FIXTURES, folder)
    rows = json.loads((folder / "alpaca" / "alpaca_data.json").read_text())
    evals = json.loads((folder / "alpaca_eval" / "alpaca_eval_gpt4_baseline.json").read_text())
    rows[3] = {"instruction": "  " + evals[5]["instruction"].upper(), "input": "", "output": "x"}
    (folder / "alpaca" / "alpaca_data.json").write_text(json.dumps(rows))
    _, m = materialize(load_local(folder, "alpaca_eval_gpt4_baseline"), "alpaca_eval_gpt4_baseline",
                       8, 7, root=tmp_path / "cache")
    assert m.dropped_from_train == [3] and m.sizes["train"] == 39


def test_malformed_data_is_named(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(FIXTURES, folder)
    (folder / "alpaca_eval" / "alpaca_eval_gpt4_baseline.json").write_text('[{"instruction": 3}]')
    sc = micro_alpaca_scenario(tmp_path, "http://127.0.0.1:9/v1", data__path=str(folder))
    with pytest.raises(ScenarioError, match=r"alpaca_eval_gpt4_baseline.json row 0: expected"):
        resolve_assets(sc, progress=False)
    with pytest.raises(ScenarioError, match="field 'judge'"):
        micro_alpaca_scenario(tmp_path, "http://127.0.0.1:9/v1", judge=None)


def test_grading_path_with_the_scripted_judge(tmp_path, micro_assets):
    """Both orders asked, a malformed verdict retried then a tie, the win rates, the judgements
    record, the cache on a second grading, the judge in the baseline key, and an outage."""
    with ScriptedJudge(longer) as server:
        sc = micro_alpaca_scenario(tmp_path, server.base_url, judge__model=unique_judge())
        assets = resolve_assets(sc, progress=False)
        dev = read_eval_split(assets.hidden_splits["dev"])
        garbled = dev[2].instruction
        server.malformed = lambda instruction: "Both are fine." if instruction == garbled else None
        grader = Grader(sc, assets)
        grader.log_root = tmp_path / "results"
        base = grader.baseline("dev")                       # graded in the child process

        asked = server.pairwise()
        assert len(asked) == 2 * 7 + 2 * 3                  # 3 tries per order for the garbled one
        outputs = {r.index: r.completion for r in base.items}
        for i, row in enumerate(dev):
            pairs = {a.fields[1:] for a in asked if a.fields[0] == row.instruction}
            assert pairs == {(row.output, outputs[i]), (outputs[i], row.output)}, row.instruction
        # the micro model's short answers lose both orders to the longer references, but one tie
        assert [r.details["preference"] for r in base.items] == [0.5 if i == 2 else 0.0 for i in range(8)]
        assert base.metrics["win_rate"] == pytest.approx(100 * 0.5 / 8)
        assert base.score == base.metrics["lc_win_rate"]
        assert any("2 verdicts were unparseable after retries and count as ties: item 2" in n
                   for n in base.notes)
        assert base.protocol["judge"]["model"] == sc.judge.model
        assert base.protocol["judge"]["prompt"] == "alpaca_eval_clf"
        assert "base_url" not in json.dumps(base.protocol)
        records = list((tmp_path / "results").rglob("judgements.jsonl"))
        assert len(records) == 1
        lines = [json.loads(x) for x in records[0].read_text().splitlines()]
        assert sorted(x["item"] for x in lines) == list(range(8))
        assert all(len(x["verdicts"]) == 2 for x in lines)

        n = len(server.requests)
        assert grader.baseline("dev").score == base.score and len(server.requests) == n
        second = grader.evaluate(assets.base_model_dir, "dev")   # graded again: all from the cache
        assert len(server.requests) == n and second.score == base.score
        assert any("0 asked in 0 requests, 16 from the cache" in x for x in second.notes)

        (tmp_path / "other").mkdir()
        other = micro_alpaca_scenario(tmp_path / "other", server.base_url, judge__model="another")
        assert Grader(other, assets).baseline_key("dev") != grader.baseline_key("dev")

        server.stop()
        (tmp_path / "down").mkdir()
        down = micro_alpaca_scenario(tmp_path / "down", server.base_url, judge__model=unique_judge())
        with pytest.raises(GradingFailed, match=r"JudgeUnavailable: the judge .* did not answer"):
            Grader(down, assets).evaluate(assets.base_model_dir, "dev")


@pytest.mark.slow
def test_micro_episode_with_the_scripted_judge(tmp_path, micro_assets, monkeypatch):
    from autorl_gym.envs.autorl_env import AutoRLEnv

    secret = "sk-judge-" + uuid.uuid4().hex
    monkeypatch.setenv("AUTORL_GYM_JUDGE_API_KEY", secret)
    with ScriptedJudge(longer) as server:
        sc = micro_alpaca_scenario(tmp_path, server.base_url, judge__model=unique_judge())
        env = AutoRLEnv(scenario=sc, workspace_root=tmp_path / "ws", results_dir=tmp_path / "results")
        try:
            obs, info = env.reset()
            assert info["scenario"]["metric"] == "lc_win_rate"
            hidden = env.unwrapped.grader.assets.hidden_splits["dev"].parent
            reference = read_eval_split(hidden / "dev.jsonl")[0].output
            obs, *_ = env.step({"tool": "run", "command": f"cat {hidden}/dev.jsonl {hidden}/test.jsonl; "
                                "find / \\( -name 'dev.jsonl' -o -name 'test.jsonl' -o -name "
                                "'*.sqlite3' \\) 2>/dev/null; echo found-done; env"})
            assert "No such file" in obs and reference not in obs and "found-done" in obs
            before = obs.split("found-done")[0]
            assert "dev.jsonl" not in before.split("No such file")[-1] and ".sqlite3" not in before
            assert secret not in obs and "AUTORL_GYM_JUDGE" not in obs and server.base_url not in obs
            obs, *_ = env.step({"tool": "read_file", "path": str(hidden / "test.jsonl")})
            assert obs.startswith("error:")
            obs, *_ = env.step({"tool": "write_file", "path": "code/sft.py",
                                "content": (Path(__file__).parent / "alpaca_sft.py").read_text()})
            obs, *_ = env.step({"tool": "run", "command": "python code/sft.py", "timeout_s": 600})
            assert "saved" in obs, obs
            before_submit = len(server.requests)
            obs, _, _, _, info = env.step({"tool": "submit", "model_path": "output/v1"})
            assert "submission graded" in obs, obs
            assert len(server.requests) == before_submit + 16       # 8 dev prompts x 2 orders
            obs, reward, terminated, _, info = env.step({"tool": "finish", "model_path": "output/v1"})
            assert terminated
            fb = info["feedback"]
            assert reward == pytest.approx(fb["score"] - fb["baseline"])
        finally:
            env.close()
    runs = list((tmp_path / "results").iterdir())
    assert len(runs) == 1
    feedback = json.loads((runs[0] / "feedback.json").read_text())
    assert sc.judge.model in json.dumps(feedback)
    assert len(list(runs[0].rglob("judgements.jsonl"))) >= 2     # the dev submission and the test
    from autorl_gym.report.build import build_report

    written = build_report(runs[0])
    assert f"judge openai:{sc.judge.model} (prompt alpaca_eval_clf" in written.files["markdown"].read_text()
