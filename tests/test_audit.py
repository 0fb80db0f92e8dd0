"""Issue 27: the contamination audit, the provenance stamp, ``verify`` and the integrity columns.

Most tests audit constructed results folders against the real hidden splits of the micro
scenarios (fast); one real micro episode (module scope) is audited at its end, verified, tampered
with in copies, and read back by the report and the leaderboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import pytest

from autorl_gym.audit.canary import canary_path
from autorl_gym.audit.hidden import distinctive
from autorl_gym.audit.normalise import item_grams, normalise
from autorl_gym.audit.provenance import PROVENANCE_FILE
from autorl_gym.audit.run import audit, index_for, read_audit
from autorl_gym.core.family import resolve_assets
from autorl_gym.report.integrity import integrity_section
from autorl_gym.report.verify import verify_run
from autorl_gym.scenarios.catalog import get_scenario

MICRO_ID = "AutoRL-Micro-Arith-v0"
MICRO_SCENARIOS = ["AutoRL-Micro-Arith-v0", "AutoRL-Micro-Arith-Multistep-v0",
                   "AutoRL-Micro-DeepSearch-v0", "AutoRL-Micro-TextWorld-v0",
                   "AutoRL-Micro-WebShop-v0"]


def _index(scenario_id: str):
    sc = get_scenario(scenario_id)
    assets = resolve_assets(sc, progress=False)
    return index_for(sc, assets), assets


def _folders(tmp_path: Path, assets=None) -> tuple[Path, Path]:
    """A workspace as an episode makes it (data/ and model/ links to the mounts) and a results
    folder."""
    ws, res = tmp_path / "ws", tmp_path / "res"
    (ws / "code").mkdir(parents=True)
    (ws / "output").mkdir()
    if assets is not None:
        (ws / "data").symlink_to(assets.train_dir, target_is_directory=True)
        (ws / "model").symlink_to(assets.base_model_dir, target_is_directory=True)
    res.mkdir()
    return ws, res


def _test_lines(assets, n: int, start: int = 0) -> list[dict]:
    lines = assets.hidden_splits["test"].read_text().splitlines()
    return [json.loads(line) for line in lines[start:start + n]]


# ------------------------------------------------------------------------- normalisation
def test_normalisation_is_the_stated_one():
    assert normalise("  Ruby HAD 6,\n\tmarbles!  ") == "ruby had 6 marbles"
    assert normalise("a_b-c") == "a b c"
    toks = [f"w{i}" for i in range(30)]
    assert item_grams(toks[:14]) == [" ".join(toks[:14])]     # under 26 tokens: matched whole
    assert item_grams(toks[:9]) == [" ".join(toks[:9])]
    assert item_grams(toks[:5]) == []                          # too short to evidence anything
    assert item_grams(toks) == [" ".join(toks[i:i + 13]) for i in range(18)]  # 13-token windows


def test_a_templated_near_duplicate_is_not_counted(tmp_path):
    """Another arithmetic question from the same template (one number differs) shares 13 tokens
    with a test item, but is another question: not counted."""
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    item = next(i for i in _test_lines(assets, 400) if "lost" in i["question"])
    words = item["question"].split()
    n = next(k for k, w in enumerate(words) if w.isdigit())
    words[n] = str(int(words[n]) + 50)
    (ws / "code" / "gen.jsonl").write_text(json.dumps({"question": " ".join(words)}))
    report = audit(index, res, ws)
    assert report.verdict == "clean", report.hits


def test_distinctive_answer_rule():
    assert distinctive("42") is None and distinctive("3.5") is None and distinctive("yes") is None
    assert distinctive("Velora Brightwater") == "velora brightwater"
    assert distinctive("Deathend") == "deathend"


# ------------------------------------------------------------------------- the scan
def test_file_holding_test_items_is_caught_with_file_and_items(tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    items = _test_lines(assets, 12, start=40)
    (ws / "code" / "extra_data.jsonl").write_text("\n".join(json.dumps(i) for i in items))
    (ws / "code" / "train.py").write_text("print('training')\n")
    report = audit(index, res, ws)
    assert report.verdict == "contaminated"
    sources = {h.source for h in report.hits}
    assert sources == {"workspace:code/extra_data.jsonl"}
    # the items named are the ones planted (their ids are their lines' indexes in test.jsonl)
    planted = {f"test:{40 + k}" for k in range(12)}
    found = set(report.items_overlapped)
    assert found <= planted and len(found) >= 10, found
    hit = next(h for h in report.hits if h.kind == "ngram")
    assert hit.text in normalise(json.dumps(items))
    assert read_audit(res) == report  # written as audit.json


@pytest.mark.parametrize("scenario_id", MICRO_SCENARIOS)
def test_train_split_only_is_clean(scenario_id, tmp_path):
    """An honest agent's data (the train split itself, copied and reformatted) is never flagged."""
    index, assets = _index(scenario_id)
    ws, res = _folders(tmp_path, assets)
    shutil.copytree(assets.train_dir, ws / "code" / "train", ignore=shutil.ignore_patterns("*.z8"))
    (ws / "code" / "train_link").symlink_to("train")  # a link within the workspace is fine
    report = audit(index, res, ws)
    assert report.verdict == "clean", (report.hits[:5], report.unread)


def test_content_the_audit_cannot_read_keeps_a_run_from_clean(tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path, assets)
    (ws / "code" / "extra.jsonl").symlink_to("/tmp/somewhere/extra.jsonl")
    report = audit(index, res, ws)
    assert report.verdict == "suspect" and "extra.jsonl" in report.reason


def test_llm_call_carrying_a_test_item_is_caught(tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    items = _test_lines(assets, 3, start=7)
    calls = [{"time": "2026-01-01T00:00:00Z", "route": "POST /v1/messages", "model": "m",
              "messages": [{"role": "user", "content": "write a training example"}],
              "answer": "sure"},
             {"time": "2026-01-01T00:00:01Z", "route": "POST /v1/messages", "model": "m",
              "messages": [{"role": "user", "content": "Solve: " + " ".join(i["question"] for i in items)}],
              "answer": items[0]["answer"]}]
    (res / "llm_calls.jsonl").write_text("\n".join(json.dumps(c) for c in calls) + "\n")
    report = audit(index, res, ws)
    # three items: within the tolerance, but named; and no control item overlaps
    assert report.verdict == "suspect", report.reason
    assert report.items_overlapped == ["test:7", "test:8", "test:9"]
    assert report.chance is not None and report.chance.decoys_overlapped == 0
    assert all(h.source.startswith("llm_call:llm_calls.jsonl:2 ") for h in report.hits)


# ------------------------------------------------------------------ public generators: the control
def _generated(stream: str, n: int) -> str:
    """What an honest agent writes when it draws its own problems from the package's generator."""
    from autorl_gym.micro.data import _record, iter_draws

    draws = iter_draws(stream)
    return "\n".join(_record(next(draws)).model_dump_json() for _ in range(n))


@pytest.mark.parametrize("seed", range(5))
def test_honest_generated_data_overlaps_by_chance_and_is_not_flagged(seed, tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path, assets)
    (ws / "code" / "generated.jsonl").write_text(_generated(f"honest-{seed}", 2000))
    report = audit(index, res, ws)
    assert report.chance is not None and report.chance.decoy_items == 4 * 600
    assert report.verdict == "clean", report.reason


def test_control_items_are_in_no_split():
    index, assets = _index(MICRO_ID)
    hidden = {normalise(i.text) for i in index.items.values()}
    train = {normalise(json.loads(line)["question"])
             for line in (assets.train_dir / "train.jsonl").read_text().splitlines()}
    decoys = {normalise(d.text) for d in index.decoys.values()}
    assert len(decoys) == 2400 and not decoys & hidden and not decoys & train


def test_regenerating_the_hidden_split_from_the_public_seed_is_contaminated(tmp_path):
    from autorl_gym.micro.data import make_splits

    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path, assets)
    test = make_splits()["test"]  # the package's own seed: the hidden split itself
    (ws / "code" / "regenerated.jsonl").write_text("\n".join(p.model_dump_json() for p in test))
    report = audit(index, res, ws)
    assert report.verdict == "contaminated" and len(report.items_overlapped) == 400
    assert report.chance is not None and report.chance.p_value < 1e-9


def test_test_items_hidden_among_generated_data_are_caught(tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path, assets)
    planted = "\n".join(json.dumps(i) for i in _test_lines(assets, 20, start=100))
    (ws / "code" / "generated.jsonl").write_text(_generated("honest-0", 2000) + "\n" + planted)
    report = audit(index, res, ws)
    assert report.verdict == "contaminated", report.reason
    assert {f"test:{i}" for i in range(100, 120)} <= set(report.items_overlapped)


def test_scenario_without_a_public_generator_has_no_control():
    index, _ = _index("AutoRL-Micro-WebShop-v0")
    assert index.decoys == {}


def test_binomial_tail():
    from autorl_gym.audit.verdict import binomial_tail

    assert binomial_tail(0, 5, 0.2) == 1.0
    assert abs(binomial_tail(1, 1, 0.2) - 0.2) < 1e-12
    assert abs(binomial_tail(2, 4, 0.5) - 11 / 16) < 1e-12
    assert binomial_tail(400, 400, 0.2) < 1e-200


def test_canary_of_a_copied_hidden_folder_is_found(tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    test_split = assets.hidden_splits["test"]
    assert canary_path(test_split, "test").is_file()  # planted beside the split
    shutil.copy(canary_path(test_split, "test"), ws / "code" / "notes.txt")
    report = audit(index, res, ws)
    assert report.verdict == "contaminated" and report.canaries_found == ["canary:test"]
    assert "canary" in report.reason


def test_canary_changes_no_score():
    """The canary is not in any item the grader reads: the split loads the same items."""
    from autorl_gym.core.family import GradeContext

    index, assets = _index(MICRO_ID)
    ctx = GradeContext(get_scenario(MICRO_ID), assets)
    for split, value in index.canaries.items():
        assert all(value not in json.dumps(i.model_dump()) for i in ctx.items(split))


def test_recased_and_split_across_lines_is_caught(tmp_path):
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    items = _test_lines(assets, 6, start=100)
    text = "\n".join(" \n ".join(i["question"].upper().split()) for i in items)
    (ws / "code" / "x.txt").write_text(text)
    report = audit(index, res, ws)
    assert report.verdict == "contaminated"
    assert len(report.items_overlapped) >= 5


def test_agent_tool_call_is_scanned(tmp_path):
    """Data written then deleted is still in the trajectory's tool calls."""
    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    items = _test_lines(assets, 5, start=200)
    step = {"step": 3, "call": {"tool": "write_file", "path": "code/d.jsonl",
                                "content": "\n".join(json.dumps(i) for i in items)}}
    (res / "trajectory.jsonl").write_text(json.dumps(step) + "\n")
    report = audit(index, res, ws)
    assert report.verdict == "contaminated"
    assert {h.source for h in report.hits} == {"trajectory:step 3"}


# ------------------------------------------------------------------------- one real episode
@pytest.fixture(scope="module")
def episode(tmp_path_factory, micro_assets):
    """A real micro episode whose agent trains on a file holding 12 hidden test items."""
    root = tmp_path_factory.mktemp("audit-episode")
    assets = resolve_assets(get_scenario(MICRO_ID), progress=False)
    env = gym.make(MICRO_ID, workspace_root=root / "workspace", results_dir=root / "results")
    try:
        env.reset(seed=0)
        leak = "\n".join(json.dumps(i) for i in _test_lines(assets, 12, start=300))
        env.step({"tool": "write_file", "path": "code/found.jsonl", "content": leak})
        obs, *_ = env.step({"tool": "run", "command": (
            "cp -rL model output/m && python -c \"import torch; from safetensors.torch import "
            "load_file, save_file; f='output/m/model.safetensors'; sd=load_file(f); "
            "sd['model.norm.weight']=sd['model.norm.weight']*1.01; save_file(sd, f, "
            "metadata={'format': 'pt'})\"")})
        assert "exit code: 0" in obs, obs
        obs, *_, info = env.step({"tool": "submit", "model_path": "output/m"})
        assert info["submission"]["error"] is None, obs
        *_, info = env.step({"tool": "finish", "model_path": "output/m"})
        results = Path(info["results_dir"])
    finally:
        env.close()
    return results


def test_episode_end_writes_audit_naming_file_and_items(episode):
    report = read_audit(episode)
    assert report is not None and report.verdict == "contaminated"
    # the file, and the write_file call that made it
    assert {h.source for h in report.hits if h.kind == "ngram"} == {"workspace:code/found.jsonl",
                                                                   "trajectory:step 1"}
    assert set(report.items_overlapped) <= {f"test:{300 + k}" for k in range(12)}
    assert len(report.items_overlapped) >= 10


def test_episode_scores_carry_provenance(episode):
    prov = json.loads((episode / PROVENANCE_FILE).read_text())
    fb = json.loads((episode / "feedback.json").read_text())
    sub = json.loads((episode / "submissions.jsonl").read_text().splitlines()[0])
    assert fb["provenance"] == prov
    assert prov["base_model_hash"] and set(prov["split_digests"]) == {"dev", "test"}
    assert prov["libraries"]["torch"] and prov["grader_backend"] == "hf"
    assert prov["decoding"]["max_new_tokens"] == 48 and prov["sandbox"] == "local"
    from autorl_gym.audit.provenance import Provenance

    assert sub["provenance_key"] == Provenance.model_validate(prov).score_key


def test_verify_confirms_the_honest_record(episode):
    result = verify_run(episode)
    assert result.verdict == "verified", result.problems
    assert result.regraded_score == pytest.approx(result.recorded_score)


def _copy(episode: Path, tmp_path: Path) -> Path:
    dest = tmp_path / episode.name
    shutil.copytree(episode, dest)
    return dest


def test_verify_catches_a_tampered_feedback(episode, tmp_path):
    run = _copy(episode, tmp_path)
    fb = json.loads((run / "feedback.json").read_text())
    fb["score"] += 10.0
    fb["improvement"] += 10.0
    (run / "feedback.json").write_text(json.dumps(fb))
    result = verify_run(run)
    assert result.verdict == "failed"
    assert [c.name for c in result.problems] == ["score"]


def test_verify_catches_a_swapped_snapshot(episode, tmp_path):
    from safetensors.torch import load_file, save_file

    run = _copy(episode, tmp_path)
    (weights,) = (run / "submissions").rglob("model.safetensors")
    sd = load_file(weights)
    sd["model.norm.weight"] = sd["model.norm.weight"] * 2
    save_file(sd, weights, metadata={"format": "pt"})
    result = verify_run(run)
    assert result.verdict == "failed"
    assert "snapshot" in [c.name for c in result.problems]


def test_verify_catches_a_mismatched_stamp(episode, tmp_path):
    run = _copy(episode, tmp_path)
    prov = json.loads((run / PROVENANCE_FILE).read_text())
    prov["libraries"]["transformers"] = "0.0.1"
    (run / PROVENANCE_FILE).write_text(json.dumps(prov))
    result = verify_run(run, regrade=False)
    names = {c.name for c in result.problems}
    assert result.verdict == "failed" and {"stamp.feedback", "stamp.reproduced"} <= names
    detail = next(c.detail for c in result.problems if c.name == "stamp.reproduced")
    assert "libraries" in detail and "0.0.1" in detail


def test_report_and_leaderboard_flag_the_run_and_split_by_provenance(episode, tmp_path):
    from autorl_gym.report.build import build_report
    from autorl_gym.report.leaderboard import build_leaderboard, write_leaderboard

    board_dir = tmp_path / "board"
    a = board_dir / "a" / episode.name
    b = board_dir / "b" / episode.name
    c = board_dir / "c" / episode.name
    for d in (a, b, c):
        shutil.copytree(episode, d)
    # c: an honest run (its audit clean), measured on another transformers version
    audit_c = json.loads((c / "audit.json").read_text())
    audit_c.update(verdict="clean", reason="no overlap", hits=[], items_overlapped=[])
    (c / "audit.json").write_text(json.dumps(audit_c))
    prov = json.loads((c / PROVENANCE_FILE).read_text())
    prov["libraries"]["transformers"] = "9.9.9"
    (c / PROVENANCE_FILE).write_text(json.dumps(prov))

    written = build_report(a)
    md = written.files["markdown"].read_text()
    assert "## Integrity" in md and "FLAGGED" in md and "contaminated" in md
    assert integrity_section(a).flagged

    board = build_leaderboard(board_dir, reuse=False)
    assert len(board.rows) == 2  # a and b together; c apart (another stamp)
    together = next(r for r in board.rows if r.flagged_runs)
    apart = next(r for r in board.rows if not r.flagged_runs)
    assert together.flagged_runs == 2 and together.mean_improvement is None  # flagged: not counted
    assert apart.mean_improvement is not None and "transformers" in (apart.measured_apart or "")
    assert "contaminated" in together.audit
    counted = build_leaderboard(board_dir, reuse=False, count_flagged=True)
    assert next(r for r in counted.rows if r.flagged_runs).mean_improvement is not None
    html = write_leaderboard(board, tmp_path / "out")["html"].read_text()
    assert "FLAGGED" in html and "not averaged" in html


def test_contaminated_episode_records_an_integrity_event(episode):
    from autorl_gym.core.integrity import read_events

    kinds = [e.kind for e in read_events(episode)]
    assert "audit.contaminated" in kinds


def test_verify_a_folder_of_runs_marks_the_tampered_one(episode, tmp_path):
    from rich.console import Console

    from autorl_gym.cli.audit import verify_command

    honest, forged = tmp_path / "runs" / "a" / episode.name, tmp_path / "runs" / "b" / episode.name
    shutil.copytree(episode, honest)
    shutil.copytree(episode, forged)
    fb = json.loads((forged / "feedback.json").read_text())
    fb["improvement"] += 5.0
    (forged / "feedback.json").write_text(json.dumps(fb))
    quiet = Console(file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115 - closed with the test
    assert verify_command(tmp_path / "runs", None, False, quiet, quiet) == 1
    assert integrity_section(honest).verification == "verified"
    forged_section = integrity_section(forged)
    assert forged_section.tampered and forged_section.flagged
    assert any(p.startswith("records.improvement") for p in forged_section.verification_problems)
    import random

    (drawn,) = random.Random(0).sample(sorted([honest, forged]), 1)  # the draw --sample 1 makes
    expected = 0 if drawn == honest else 1
    assert verify_command(tmp_path / "runs", None, False, quiet, quiet, sample=1, seed=0) == expected


# ------------------------------------------------------------- prompts and answers via the gateway
def test_streamed_answer_text_joins_its_deltas_without_their_types():
    from autorl_gym.gateway.usage import UsageMeter

    meter = UsageMeter(streaming=True)
    events = [{"type": "content_block_start", "content_block": {"type": "text", "text": ""}},
              {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Ruby had 6 mar"}},
              {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "bles."}},
              {"type": "message_delta", "usage": {"output_tokens": 5}}]
    for e in events:
        meter.feed(f"event: x\ndata: {json.dumps(e)}\n\n".encode())
    assert meter.usage.output_tokens == 5
    assert meter.answer.text == "Ruby had 6 marbles."


@pytest.mark.parametrize("api", ["anthropic", "responses", "chat", "gemini"])
def test_test_items_sent_out_or_answered_through_the_gateway_are_caught(api, tmp_path):
    """The gateway records each call's prompt and answer text; the audit reads them: an agent that
    sends hidden items out, or a hosted model that answers with them, is caught on the call."""
    from fake_llm import FakeLLMServer, Text
    from test_gateway import API_CASES, client, gateway

    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path)
    sent, answered = _test_lines(assets, 3, start=20), _test_lines(assets, 3, start=30)
    route, provider, body, auth = API_CASES[api]
    body = json.loads(json.dumps(body))
    prompt = "Make these harder:\n" + "\n".join(i["question"] for i in sent)
    if api == "gemini":
        body["contents"][0]["parts"][0]["text"] = prompt
    elif api == "responses":
        body["input"][0]["content"] = prompt
    else:
        body["messages"][0]["content"] = prompt
    answer = "Here you go:\n" + "\n".join(i["question"] for i in answered)
    with FakeLLMServer([Text(text=answer)]) as up:
        gw = gateway(res, up.base_url, provider)
        try:
            header = {"authorization": f"Bearer {gw.token}"} if auth == "authorization" else {auth: gw.token}
            with client(gw) as c:
                assert c.post(route, json=body, headers=header).status_code == 200
        finally:
            gw.stop()
    line = json.loads((res / "llm_calls.jsonl").read_text().splitlines()[0])
    assert sent[0]["question"] in line["request_text"] and line["response_text"].startswith("Here you go")
    report = audit(index, res, ws)
    assert report.verdict == "contaminated", report.reason
    assert set(report.items_overlapped) == {f"test:{i}" for i in (20, 21, 22, 30, 31, 32)}
    assert all(h.source.startswith("llm_call:llm_calls.jsonl:1 ") for h in report.hits)


# ------------------------------------------------------------------------ the optional LLM review
def _review_spec(judge, **kw):
    from autorl_gym.core.scenario import AuditSpec, JudgeSpec

    return AuditSpec(llm_review=JudgeSpec(model="scripted-judge", base_url=judge.base_url,
                                          api_key_env=None, retries=0), **kw)


def _reworded(item: dict) -> str:
    """A test item as an agent rewords it: the same names and numbers, other words."""
    import re

    facts = re.findall(r"\b(?:[A-Z][a-z]+|\d+)\b", item["question"])
    return "Word problem about " + " and ".join(facts) + ": what is the total, in the end?"


def test_llm_review_names_a_reworded_item_the_ngrams_miss(tmp_path):
    from judge_server import ScriptedJudge

    from autorl_gym.audit.review import _sample

    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path, assets)
    key = _sample(index, 40)[3]
    item = json.loads(assets.hidden_splits["test"].read_text().splitlines()[int(key.split(":")[1])])
    (ws / "code" / "notes.txt").write_text(_reworded(item) + "\n")
    assert audit(index, res, ws).verdict == "clean"  # no 13-gram, no whole question: unseen
    with ScriptedJudge() as judge:
        report = audit(index, res, ws, spec=_review_spec(judge))
    review = report.review
    assert review is not None and review.error is None, review
    assert key in review.items_named and review.items_shown == 40
    assert report.verdict == "suspect" and "LLM review" in report.reason and key in report.reason
    (asked,) = [a for a in judge.requests if a.kind == "review"]
    assert _reworded(item) in asked.fields[1]  # the material it read


def test_llm_review_never_lowers_a_verdict_and_a_failing_judge_changes_nothing(tmp_path):
    from judge_server import ScriptedJudge

    index, assets = _index(MICRO_ID)
    ws, res = _folders(tmp_path, assets)
    items = _test_lines(assets, 10, start=200)
    (ws / "code" / "leak.jsonl").write_text("\n".join(json.dumps(i) for i in items))
    with ScriptedJudge() as judge:
        judge.review_rule = lambda hidden, material: ["test:9999", "dev:nope"]  # unshown: ignored
        report = audit(index, res, ws, spec=_review_spec(judge))
        assert report.verdict == "contaminated" and report.review is not None
        assert report.review.items_named == [] and report.review.ignored == ["test:9999", "dev:nope"]
        judge.status = 500
        clean_ws, clean_res = _folders(tmp_path / "clean", assets)
        report = audit(index, clean_res, clean_ws, spec=_review_spec(judge))
    assert report.verdict == "clean" and report.review is not None
    assert report.review.error and "500" in report.review.error
