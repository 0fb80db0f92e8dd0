"""The judge package against the scripted judge server (real HTTP, the real openai client):
both orders, the cache, strict verdicts, outages, and win rates on known verdicts."""

from __future__ import annotations

import json
import random
import threading

import pytest
from judge_server import ScriptedJudge, always_first, longer

from autorl_gym.core.scenario import JudgeSpec
from autorl_gym.judge import CachedJudge, JudgeUnavailable, make_judge_backend
from autorl_gym.judge import prompts as judge_prompts
from autorl_gym.judge.cache import JudgementCache
from autorl_gym.judge.winrates import Annotation, win_rates


@pytest.fixture
def server():
    with ScriptedJudge(longer) as s:
        yield s


def make(server: ScriptedJudge, tmp_path, cache: JudgementCache | None = None, **kw) -> CachedJudge:
    spec = JudgeSpec(model=kw.pop("model", "scripted"), base_url=server.base_url,
                     retries=kw.pop("retries", 0), timeout_s=5, **kw)
    return CachedJudge(make_judge_backend(spec), cache or JudgementCache(tmp_path / "cache.sqlite3"),
                       record=tmp_path / "judgements.jsonl", concurrency=4)


def test_both_orders_are_asked_and_cancel_position_bias(server, tmp_path):
    server.rule = always_first  # a judge that always picks output_1
    judge = make(server, tmp_path)
    comp = judge.compare("Say hi.", "hi there", "hello")
    asked = server.pairwise()
    assert [a.fields for a in asked] == [("Say hi.", "hello", "hi there"),   # reference first
                                         ("Say hi.", "hi there", "hello")]   # output first
    assert [v.winner for v in comp.verdicts] == ["reference", "output"]
    assert comp.preference == 0.5
    server.rule = longer
    comp = judge.compare("Say more.", "a longer answer", "short")
    assert comp.preference == 1.0 and [v.raw for v in comp.verdicts] == ["M", "m"]
    lines = [json.loads(x) for x in (tmp_path / "judgements.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["preference"] == 1.0 and len(lines[1]["verdicts"]) == 2
    assert lines[1]["reference"] == "short" and lines[1]["output"] == "a longer answer"


def test_cache_keys_on_prompt_outputs_model_and_prompt_version(server, tmp_path, monkeypatch):
    cache = JudgementCache(tmp_path / "cache.sqlite3")
    judge = make(server, tmp_path, cache)
    judge.compare("Name a color.", "red", "blue, like the sky")
    assert len(server.requests) == 2
    again = make(server, tmp_path, cache)           # a new judge, the same cache file
    comp = again.compare("Name a color.", "red", "blue, like the sky")
    assert len(server.requests) == 2 and all(v.cached for v in comp.verdicts)
    assert again.stats.cached == 2 and again.stats.requests == 0
    make(server, tmp_path, cache).compare("Name a color.", "green", "blue, like the sky")
    assert len(server.requests) == 4                 # another output: asked
    make(server, tmp_path, cache, model="other-judge").compare("Name a color.", "red",
                                                               "blue, like the sky")
    assert len(server.requests) == 6                 # another judge model: asked
    real = judge_prompts.PROMPTS["alpaca_eval_clf"]

    def bumped():
        p = real()
        return judge_prompts.JudgePrompt(p.name, p.version + " (edited)", p.template, p.parse)

    monkeypatch.setitem(judge_prompts.PROMPTS, "alpaca_eval_clf", bumped)
    make(server, tmp_path, cache).compare("Name a color.", "red", "blue, like the sky")
    assert len(server.requests) == 8                 # another prompt version: asked


def test_malformed_verdict_is_retried_then_counted_as_a_tie(server, tmp_path):
    flaky: set[str] = set()

    def malformed(instruction: str) -> str | None:
        if instruction == "always garbled":
            return "I think the first one, m."
        if instruction == "garbled once" and instruction not in flaky:
            flaky.add(instruction)
            return "Model M"
        return None

    server.malformed = malformed
    judge = make(server, tmp_path, parse_retries=2)
    comp = judge.compare("always garbled", "a much longer output", "short")
    assert [(v.winner, v.parsed, v.attempts) for v in comp.verdicts] == [("tie", False, 3)] * 2
    assert comp.preference == 0.5 and comp.unparsed == 2
    assert len(server.requests) == 6 and judge.stats.unparsed == 2
    comp = judge.compare("garbled once", "a much longer output", "short")
    assert [(v.winner, v.parsed, v.attempts) for v in comp.verdicts] == [("output", True, 2),
                                                                         ("output", True, 1)]


def test_outage_raises_with_the_reason(server, tmp_path, monkeypatch):
    judge = make(server, tmp_path)
    server.status = 500
    with pytest.raises(JudgeUnavailable, match="did not answer|refused"):
        judge.compare("q", "a", "b")
    server.status = 401
    monkeypatch.delenv("AUTORL_GYM_JUDGE_API_KEY", raising=False)
    with pytest.raises(JudgeUnavailable, match=r"HTTP 401.*AUTORL_GYM_JUDGE_API_KEY"):
        make(server, tmp_path).compare("q", "a", "b")
    server.status = None
    server.stop()
    with pytest.raises(JudgeUnavailable, match="did not answer after 2 tries"):
        make(server, tmp_path, retries=1).compare("q", "a", "b")
    assert judge.cache is not None and len(judge.cache) == 0   # nothing cached from an outage


def test_compare_many_keeps_order_and_stops_at_the_first_outage(server, tmp_path):
    judge = make(server, tmp_path)
    triples = [(f"q{i}", "x" * (i % 4), "yy") for i in range(12)]   # shorter, even, longer
    comps = judge.compare_many(triples, tags=[{"item": i} for i in range(12)])
    assert [c.preference for c in comps] == [[0.0, 0.0, 0.5, 1.0][i % 4] for i in range(12)]
    lines = [json.loads(x) for x in (tmp_path / "judgements.jsonl").read_text().splitlines()]
    assert sorted(x["item"] for x in lines) == list(range(12))
    seen = threading.Event()

    def down_after_two(instruction: str) -> str | None:
        if seen.is_set():
            server.status = 503
        seen.set()
        return None

    server.malformed = down_after_two
    with pytest.raises(JudgeUnavailable):
        make(server, tmp_path, model="fresh").compare_many([(f"r{i}", "a", "b") for i in range(40)])
    assert len(server.pairwise()) < 24 + 80


def test_match_is_strict_and_cached(server, tmp_path):
    judge = make(server, tmp_path)
    assert judge.match("Capital of France?", "It is Paris.", "Paris").correct
    assert not judge.match("Capital of France?", "Lyon", "Paris").correct
    judge.match("Capital of France?", "It is Paris.", "Paris")
    assert len([a for a in server.requests if a.kind == "match"]) == 2
    server.match_rule = lambda q, a, g: "Yes, it is."
    m = make(server, tmp_path, parse_retries=1).match("2+2?", "4", "4")
    assert not m.correct and not m.parsed and m.attempts == 2


def test_host_overrides_model_and_endpoint(monkeypatch):
    spec = JudgeSpec(model="gpt-x", base_url="https://example.invalid/v1")
    monkeypatch.setenv("AUTORL_GYM_JUDGE_MODEL", "local-judge")
    monkeypatch.setenv("AUTORL_GYM_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    host = spec.on_host()
    assert (host.model, host.base_url) == ("local-judge", "http://127.0.0.1:9/v1")
    assert (spec.model, spec.base_url) == ("gpt-x", "https://example.invalid/v1")


def ann(prefs: list[float], out_len=None, ref_len=None) -> list[Annotation]:
    return [Annotation(index=i, output="o" * (out_len[i] if out_len else 10 + i),
                       reference="r" * (ref_len[i] if ref_len else 20), preference=p)
            for i, p in enumerate(prefs)]


def test_win_rates_on_known_verdicts():
    # each preference is the output's share of its two verdicts
    w = win_rates(ann([1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.75, 0.25]))
    assert w.win_rate == pytest.approx(100 * 4.5 / 8)          # 56.25
    assert (w.wins, w.losses, w.draws, w.n) == (4, 3, 1, 8)
    # squared deviations from 0.5625 sum to 1.34375; sample variance / 7, standard error / sqrt(8)
    assert w.standard_error == pytest.approx(100 * (1.34375 / 7) ** 0.5 / 8 ** 0.5)
    assert w.lc_method == "alpaca-eval length_controlled_minimal"
    few = win_rates(ann([1.0, 0.0, 0.5]))                      # too few items for the GLM
    assert few.win_rate == pytest.approx(50.0) and few.lc_win_rate == few.win_rate
    assert "fewer than 5" in few.lc_method
    same = win_rates(ann([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], out_len=[30] * 6, ref_len=[20] * 6))
    assert same.win_rate == pytest.approx(100 * 4 / 6) and same.lc_win_rate == same.win_rate
    assert "no length differences" in same.lc_method


def test_length_controlled_rate_discounts_length_gaming():
    rng = random.Random(0)
    out_len = [rng.randint(50, 900) for _ in range(200)]
    ref_len = [rng.randint(50, 400) for _ in range(200)]
    gamed = win_rates(ann([1.0 if o > r else 0.0 for o, r in zip(out_len, ref_len, strict=True)],
                          out_len, ref_len))
    assert gamed.win_rate > 70 and gamed.lc_win_rate < gamed.win_rate - 15
    fair = win_rates(ann([1.0 if rng.random() < 0.7 else 0.0 for _ in range(200)], out_len, ref_len))
    assert abs(fair.lc_win_rate - fair.win_rate) < 5
