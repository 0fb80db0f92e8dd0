"""The search engine, backends, cache, judge and DeepSearchQA loading (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from judge_server import ScriptedJudge
from search_doubles import FakeSerper

from autorl_gym.core.scenario import JudgeSpec
from autorl_gym.interactive import PolicyInput, PromptSpec, expert_policy, find_games, rollout
from autorl_gym.interactive.deepsearch import exact_match, normalize_answer, parse_command
from autorl_gym.interactive.search import (
    CachedSearch,
    SearchError,
    SearchSpec,
    make_search,
    read_documents,
)
from autorl_gym.judge import JudgeUnavailable
from autorl_gym.micro.search_world import Sizes, generate_world, write_split
from autorl_gym.scenarios.catalog import get_scenario

FIXTURE = Path(__file__).parent / "data" / "deepsearchqa"
PROMPT = PromptSpec(history=2, max_obs_chars=200, max_goal_chars=200, intro=False, admissible=False)
SMALL = Sizes(questions=30)


@pytest.fixture
def world_split(tmp_path: Path) -> Path:
    write_split(generate_world(7, SMALL), tmp_path / "split")
    return tmp_path / "split"


def answer_at_once(batch: list[PolicyInput]) -> list[str]:
    """Answers at the first step with the first name of the question (no search)."""
    return [f"answer[{b.state.goal.split(' that ')[-1].split(' works')[0].split(' lives')[0]}]"
            for b in batch]


def test_expert_chain_answers_every_question_and_answering_at_once_scores_near_zero(world_split):
    questions = find_games(world_split)
    assert len(questions) == SMALL.questions
    eps = rollout(questions, expert_policy, max_steps=6, prompt=PROMPT, expert=True)
    assert all(e.won for e in eps), [e.transcript() for e in eps if not e.won][:2]
    assert {e.steps for e in eps} <= {3, 4}  # two or three searches, then the answer
    at_once = rollout(questions, answer_at_once, max_steps=6, prompt=PROMPT)
    assert all(e.steps == 1 for e in at_once)
    assert sum(e.won for e in at_once) <= 1


def test_worlds_are_deterministic_and_differ_in_their_facts(tmp_path: Path) -> None:
    a, b = generate_world(7, SMALL), generate_world(7, SMALL)
    assert a.model_dump() == b.model_dump()
    c = generate_world(8, SMALL)
    both = sorted(n for n, e in a.entities.items() if e.kind == "person" and n in c.entities)
    assert both  # one pool of names ...
    moved = [n for n in both if a.entities[n].attrs != c.entities[n].attrs]
    assert len(moved) > 0.8 * len(both)  # ... and other facts about them in another world
    # every question's answer is absent from the documents the chain reads before the last one
    from autorl_gym.micro.search_world import document
    for q in a.questions:
        for name in [x[7:-1] for x in q.expert[:-2]]:
            assert q.answer not in document(a.entities[name]), (q, name)


def test_engine_commands_and_admissible_names(world_split) -> None:
    from autorl_gym.interactive import open_game

    ref = find_games(world_split)[0]
    env = open_game(ref, max_steps=6, expert=True)
    st = env.reset()
    assert st.admissible_commands == [st.expert_actions[0]]  # the question names one entity
    st = env.step("look around")
    assert st.observation.startswith("Invalid action") and st.steps == 1 and not st.done
    st = env.step(st.expert_actions[0])
    assert st.queries and st.observation.startswith("[1] ")
    assert st.expert_actions[0] in st.admissible_commands
    assert parse_command("search[ Foo  Bar ]") == ("search", "Foo Bar")
    assert parse_command("answer[1987") == ("answer", "1987")
    assert parse_command("answer[]") is None
    assert normalize_answer("The  Beagle!") == "beagle" and exact_match("the beagle", ["Beagle"])


def test_bm25_finds_the_entitys_own_document(world_split) -> None:
    backend = make_search(SearchSpec(backend="bm25", documents="docs"), world_split)
    for d in read_documents(world_split / "docs")[:20]:
        assert backend.search(d.title, 1)[0].title == d.title
    with pytest.raises(SearchError, match="unknown search backend"):
        make_search(SearchSpec(backend="nope"))
    with pytest.raises(SearchError, match="no such folder"):
        make_search(SearchSpec(backend="bm25", documents=str(world_split / "missing")))


def test_the_cache_answers_a_second_asking_without_the_backend(tmp_path: Path, world_split) -> None:
    inner = make_search(SearchSpec(backend="bm25", documents="docs"), world_split)
    first = CachedSearch(inner, tmp_path / "cache")
    before = inner.calls
    r1 = [first.search(q, 2) for q in ("Dravia", "glass", "founded 1900")]
    assert inner.calls - before == 3 and first.misses == 3
    again = CachedSearch(inner, tmp_path / "cache")        # a new grading, same cache folder
    r2 = [again.search(q, 2) for q in ("Dravia", "glass", "founded  1900")]
    assert inner.calls - before == 3 and again.hits == 3 and r1 == r2


def test_web_backend_calls_the_api_with_the_hosts_key_and_caches(tmp_path, monkeypatch) -> None:
    pages = [{"title": "Purdue University", "snippet": "Purdue was founded in 1869.", "link": "u1"},
             {"title": "Neil Armstrong", "snippet": "Armstrong attended Purdue.", "link": "u2"}]
    with FakeSerper(pages, key="k-123") as api:
        spec = SearchSpec(backend="web", provider="serper", endpoint=api.url + "/search",
                          api_key_env="TEST_SERPER_KEY", cache_dir=str(tmp_path / "c"))
        backend = make_search(spec)
        with pytest.raises(SearchError, match=r"\$TEST_SERPER_KEY"):
            backend.search("anything", 2)
        monkeypatch.setenv("TEST_SERPER_KEY", "k-123")
        res = backend.search("Neil Armstrong", 2)
        assert [r.url for r in res] == ["u2", "u1"] and res[0].title == "Neil Armstrong"
        assert make_search(spec).search("Neil Armstrong", 2) == res   # a fresh grader: cached
        assert len(api.requests) == 1 and api.requests[0]["body"] == {"q": "Neil Armstrong", "num": 2}
        monkeypatch.setenv("TEST_SERPER_KEY", "wrong")
        with pytest.raises(SearchError, match="403"):
            backend.search("another query", 2)


# ------------------------------------------------------------------ DeepSearchQA's own format


def dsqa_scenario(tmp_path: Path, **search):  # noqa: ANN201
    """DeepSearchQA on the 12-question fixture (its own CSV format) with its documents."""
    sc = get_scenario("AutoRL-DeepSearchQA-v0")
    options = {**sc.task_options, "search": {**sc.task_options["search"],
                                             "documents": str(FIXTURE / "docs"), **search}}
    return sc.model_copy(update={
        "data": sc.data.model_copy(update={"path": FIXTURE / "DSQA-full.csv", "dev_size": 2}),
        "task_options": options})


def test_deepsearchqa_loads_its_own_format_and_splits_as_the_original(tmp_path) -> None:
    import datasets

    from autorl_gym.tasks.deepsearchqa import load_questions, split_rows

    rows, where = load_questions(dsqa_scenario(tmp_path))
    assert where.endswith("DSQA-full.csv") and len(rows) == 12
    raw = datasets.load_dataset("csv", data_files=str(FIXTURE / "DSQA-full.csv"), split="train")
    order = raw.shuffle(seed=42)["problem"]
    assert [r["question"] for r in rows] == [p.strip() for p in order]
    assert {r["answer_type"] for r in rows} == {"Single Answer", "Set Answer"}
    splits = split_rows(rows, dev_size=2, dev_seed=5)
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [4, 2, 6]
    ids = {s: {r["id"] for r in splits[s]} for s in splits}
    assert not ids["train"] & (ids["dev"] | ids["test"]) and not ids["dev"] & ids["test"]
    assert split_rows(rows, 2, 5) == splits


def test_deepsearchqa_refuses_a_file_without_its_columns(tmp_path) -> None:
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.tasks.deepsearchqa import load_questions

    bad = tmp_path / "DSQA-full.csv"
    bad.write_text("question,gold\nwhat?,that\n")
    sc = dsqa_scenario(tmp_path)
    sc = sc.model_copy(update={"data": sc.data.model_copy(update={"path": bad})})
    with pytest.raises(ScenarioError, match="no column problem, answer"):
        load_questions(sc)


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"\w+", text.lower()))


ANSWERS = {  # question start -> what the scripted policy answers (None: the gold string)
    "List the planets": "It is Mercury, Venus",         # right, not the gold string: judge yes
    "What is the chemical symbol": "Iridium",           # wrong: judge no
    "What is the highest mountain": "Kosciuszko",       # the judge's reply does not parse
}


def test_deepsearchqa_grading_exact_match_first_then_the_judge(tmp_path, monkeypatch) -> None:
    """The family's grading on the fixture (answers written by a scripted policy) with main's
    judge (:mod:`autorl_gym.judge`) behind the scripted judge server: exact matches are never
    sent to the judge, the others are asked once (an unparseable verdict is asked again, then
    counts as wrong), a second grading asks neither the judge nor the search backend, and a
    judge outage fails the grading with its reason."""
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.family import GradeContext
    from autorl_gym.tasks.deepsearchqa import DeepSearchQATask, _write_split, load_questions, split_rows

    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    family = DeepSearchQATask()
    sc = dsqa_scenario(tmp_path)
    _inside, host, _mounts = family._specs(sc)
    rows, _ = load_questions(sc)
    split = tmp_path / "test"
    _write_split(split, split_rows(rows, 2, 5)["test"], host)
    refs = find_games(split)
    gold = {json.loads(r.path.read_text())["question"]: json.loads(r.path.read_text())["answer"]
            for r in refs}
    answers = dict(ANSWERS)

    def policy(batch: list[PolicyInput]) -> list[str]:
        out = []
        for b in batch:
            if b.state.steps == 0:
                out.append(f"search[{b.state.goal[:60]}]")
                continue
            mine = next((a for q, a in answers.items() if b.state.goal.startswith(q)), None)
            out.append(f"answer[{mine or gold[b.state.goal]}]")
        return out

    def grade(ctx: GradeContext) -> list:  # noqa: ANN001
        backends = family._use_cached_search(refs)
        eps = rollout(refs, policy, max_steps=6, prompt=sc.interactive.prompt)
        return family.results(ctx, refs, eps, backends)

    with ScriptedJudge() as judge:
        judge.match_rule = lambda q, answer, g: ("unsure" if answer == "Kosciuszko" else
                                                 "yes" if _words(g) <= _words(answer) else "no")
        spec = JudgeSpec(model="judge-1", base_url=judge.base_url, api_key_env=None, retries=0)
        sc = sc.model_copy(update={"judge": spec})
        family.check_scenario(sc)
        ctx = GradeContext(sc, ScenarioAssets(base_model_dir=tmp_path, train_dir=tmp_path,
                                              hidden_splits={"test": split}))
        res = grade(ctx)
        by_q = {next((q for q in ANSWERS if r.details["question"].startswith(q)),
                     r.details["question"]): r for r in res}
        judged = set(ANSWERS)
        assert {q for q, r in by_q.items() if "judge" in r.details} == judged
        assert all(r.correct and r.details["graded_by"] == "exact_match"
                   for q, r in by_q.items() if q not in judged)
        assert by_q["List the planets"].correct and by_q["List the planets"].details["graded_by"] == "judge"
        assert not by_q["What is the chemical symbol"].correct
        unsure = by_q["What is the highest mountain"]
        assert not unsure.correct and unsure.details["judge"]["parsed"] is False
        asked = [a.fields[1] for a in judge.requests]
        assert sorted(set(asked)) == sorted(ANSWERS.values())
        assert len(asked) == 2 + 1 + spec.parse_retries        # the unparseable one asked again
        assert {a.model for a in judge.requests} == {"judge-1"}
        assert all(r.details["queries"] for r in res)
        metrics = family.summary_metrics(res)
        assert metrics["score_ci_low"] <= 100 * sum(r.correct for r in res) / len(res) \
            <= metrics["score_ci_high"]
        assert metrics["search_backend_calls"] == len(refs)
        assert metrics["judge_verdicts"] == 3 and metrics["judge_requests"] == len(asked)
        assert metrics["judge_unparsed"] == 1
        record = family.protocol_record(ctx, "hf-rollout")
        assert record["judge"]["prompt"] == "match_v1" and "key" not in json.dumps(record).lower()
        from autorl_gym.report.build import graded_by
        assert graded_by(record).startswith("judge openai:judge-1 (prompt match_v1, match_v1, asked "
                                            "only where the normalised answer differs")

        res2 = grade(ctx)                 # a second grading: no judge call, no search call
        assert len(judge.requests) == len(asked)
        assert family.summary_metrics(res2)["search_backend_calls"] == 0
        assert [r.correct for r in res2] == [r.correct for r in res]
        assert all(r.details["judge"]["cached"] for r in res2 if "judge" in r.details)

        judge.status = 503                # a new answer while the judge is down
        answers["What is the chemical symbol"] = "Iridium (Ir)"
        with pytest.raises(JudgeUnavailable, match="judge-1"):
            grade(ctx)


SCENARIOS = Path(__file__).resolve().parents[1] / "autorl_gym" / "scenarios"


@pytest.mark.parametrize(("yaml_name", "mutate", "field"), [
    ("deepsearchqa.yaml", lambda d: d["task_options"]["search"].update(backend="remote"),
     "task_options.search.backend"),
    ("deepsearchqa.yaml", lambda d: d["task_options"]["search"].update(colour="red"),
     "task_options.search.colour"),
    ("deepsearchqa.yaml", lambda d: d["task_options"]["search"].update(backend="web", provider="x"),
     "task_options.search.provider"),
    ("deepsearchqa.yaml", lambda d: d["judge"].update(match_prompt="nope"), "judge.match_prompt"),
    ("deepsearchqa.yaml", lambda d: d["judge"].update(backend="nope"), "judge.backend"),
    ("micro_deepsearch.yaml", lambda d: d.update(judge={"model": "m"}), "judge"),
    ("micro_deepsearch.yaml", lambda d: d["interactive"].update(max_steps=99), "interactive.max_steps"),
])
def test_search_scenarios_are_checked_at_load(tmp_path, yaml_name, mutate, field) -> None:
    import yaml

    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.scenarios.catalog import load_scenario_file

    data = yaml.safe_load((SCENARIOS / yaml_name).read_text())
    mutate(data)
    path = tmp_path / yaml_name
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError, match=f"field '{field}'"):
        load_scenario_file(path)


def test_score_interval_and_a_gain_inside_the_noise_is_said_plainly() -> None:
    from autorl_gym.grading.stats import paired_bootstrap, score_interval

    iv = score_interval([1.0] * 30 + [0.0] * 70)
    assert iv.score == 30.0 and iv.low < 30.0 < iv.high and iv.low > 15 and iv.high < 45
    assert score_interval([1.0, 1.0]).low == 100.0
    base = [0.0, 1.0] * 50
    chosen = base[:]
    chosen[0] = chosen[2] = chosen[4] = 1.0                 # +3 points on 100 items
    gain = paired_bootstrap(chosen, base)
    assert gain.improvement == pytest.approx(3.0) and not gain.significant
    assert "inside the noise" in gain.text()
