"""The WebShop engine on a fixture catalogue in WebShop's own layout (tests/data/webshop): the
same loading path as the full data, the text environment's pages and commands, the expert, and
the family's splits."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from autorl_gym.core.scenario import ScenarioError
from autorl_gym.interactive import PolicyInput, expert_policy, find_games, game_ref, rollout
from autorl_gym.interactive.shop_data import (
    Shop,
    human_goals,
    product_files,
    product_price,
    read_products,
)
from autorl_gym.interactive.webshop import ShopEnv
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.webshop import build_webshop, session_range, split_sessions, webshop_root

FIXTURE = Path(__file__).parent / "data" / "webshop"


def fixture_scenario(path: Path = FIXTURE):  # noqa: ANN201
    """AutoRL-WebShop-v0 over the fixture: test sessions 0-1, dev 2 of 2-4, train the rest."""
    sc = get_scenario("AutoRL-WebShop-v0")
    return sc.model_copy(update={
        "data": sc.data.model_copy(update={"path": path, "dev_size": 2}),
        "interactive": sc.interactive.model_copy(
            update={"test_split": "0-1", "dev_split": "2-4", "train_split": "2-"})})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:  # noqa: ANN001
    dest = tmp_path_factory.mktemp("webshop") / "built"
    build_webshop(webshop_root(fixture_scenario()), dest, fixture_scenario())
    return dest


def test_fixture_loads_as_webshop_data() -> None:
    items, attrs = product_files(FIXTURE)
    assert (items.name, attrs.name) == ("items_shuffle_1000.json", "items_ins_v2_1000.json")
    products = read_products(items, attrs)
    assert len(products) == 8  # a duplicate ASIN and ASIN "nan" skipped
    by = {p["asin"]: p for p in products}
    assert by["B07NZ3QS7S"]["BulletPoints"] == ["Clean comfort scent"]  # a string becomes a list
    assert by["B078GWRC1J"]["options"]["scent"][1] == "bright citrus"  # lowercased values
    assert by["B078GWRC1J"]["options"]["size"][0] == "travel set (4-pack)"
    ranged = by["B07NZ3QS7S"]
    assert ranged["pricing"] == [4.97, 13.99] and ranged["Price"] == "$4.97 to $13.99"
    assert 4.97 <= product_price(ranged) <= 13.99 and product_price(ranged) == product_price(ranged)


def test_goals_follow_the_originals_order() -> None:
    shop = Shop(FIXTURE)
    human = json.loads((FIXTURE / "items_human_ins.json").read_text())
    goals = human_goals(shop.products, shop.prices, human)
    assert len(goals) == 8  # one instruction without attributes is skipped
    # the original shuffles its goal list (built in product order) with random.seed(233);
    # random.shuffle(goals): the same permutation of the same list
    asins = [p["asin"] for p in shop.products]

    def built_order(g: dict) -> tuple[int, int]:
        texts = [i["instruction"].strip(".") for i in human[g["asin"]]]
        return asins.index(g["asin"]), texts.index(g["instruction_text"].split(", and price lower")[0])

    unshuffled = sorted(goals, key=built_order)
    state = random.getstate()
    try:
        random.seed(233)
        random.shuffle(unshuffled)
    finally:
        random.setstate(state)
    assert unshuffled == goals
    for g in goals:
        assert g["instruction_text"].endswith(f", and price lower than {g['price_upper']:.2f} dollars")
        assert g["price_upper"] > shop.prices[g["asin"]]
    assert goals == human_goals(shop.products, shop.prices, human)  # deterministic


def test_splits_are_disjoint_and_demonstrations_only_of_training_goals(built: Path) -> None:
    names = {s: {r.name for r in find_games(built / d)}
             for s, d in (("train", "train/sessions"), ("dev", "hidden/dev"), ("test", "hidden/test"))}
    assert names["test"] == {"session_00000", "session_00001"}
    assert len(names["dev"]) == 2 and len(names["train"]) == 4
    assert not (names["train"] & names["dev"] or names["train"] & names["test"]
                or names["dev"] & names["test"])
    assert {r.name for r in find_games(built / "train")} == names["train"]  # the shop holds no session
    demos = (built / "train" / "demonstrations" / "il_trajs_finalized_images.jsonl").read_text()
    train_goals = [ShopEnv(r).goal["instruction_text"] for r in find_games(built / "train")]
    assert len(demos.splitlines()) == 1 and "human hair extensions" in demos
    assert any("human hair extensions" in g for g in train_goals)
    queries = json.loads((built / "train" / "demonstrations" / "goal_query_map.json").read_text())
    assert list(queries) == ["i want human hair extensions, 18 inch, jet black"]
    assert not (built / "train" / "items_human_ins.json").exists()
    assert sorted(p.name for p in (built / "train" / "shop").iterdir()) == [
        "index", "items_ins_v2_1000.json", "items_shuffle_1000.json"]


def test_session_ranges() -> None:
    assert session_range("0-99", 12087, "test_split") == range(0, 100)
    assert session_range("1500-", 12087, "train_split") == range(1500, 12087)
    assert session_range("0-99", 5, "test_split") == range(0, 5)
    with pytest.raises(ScenarioError, match="test_split"):
        session_range("first hundred", 10, "test_split")
    sc = get_scenario("AutoRL-WebShop-v0")
    splits = split_sessions(12087, sc)
    assert splits["test"] == list(range(100)) and len(splits["dev"]) == 100
    assert all(500 <= i < 1500 for i in splits["dev"]) and splits["train"][0] == 1500
    with pytest.raises(ScenarioError, match="dev split holds no session"):
        split_sessions(120, sc)


def test_missing_data_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("WEBSHOP_DATA", raising=False)
    monkeypatch.delenv("AUTORL_GYM_DATA_DIR", raising=False)
    with pytest.raises(ScenarioError, match=r"\$WEBSHOP_DATA"):
        webshop_root(get_scenario("AutoRL-WebShop-v0"))
    monkeypatch.setenv("WEBSHOP_DATA", str(tmp_path))
    with pytest.raises(ScenarioError, match="items_shuffle.json"):
        webshop_root(get_scenario("AutoRL-WebShop-v0"))


def test_expert_buys_the_target_and_scores_one(built: Path) -> None:
    sessions = find_games(built / "train" / "sessions") + find_games(built / "hidden" / "test")
    episodes = rollout(sessions, expert_policy, max_steps=15, expert=True)
    assert all(e.won and e.reward == 1.0 for e in episodes), [(e.game, e.reward) for e in episodes]
    for e in episodes:
        assert e.turns[0].action.startswith("search[") and e.turns[-1].action == "click[buy now]"


def test_a_policy_that_only_searches_scores_zero(built: Path) -> None:
    def searcher(batch: list[PolicyInput]) -> list[str]:
        return [f"search[{b.state.goal}]" for b in batch]

    episodes = rollout(find_games(built / "hidden" / "test"), searcher, max_steps=6)
    assert all(not e.won and e.reward == 0.0 and e.steps == 6 for e in episodes)


def test_pages_and_commands(built: Path) -> None:
    ref = game_ref(built / "hidden" / "test" / "session_00000.shop.json")
    env = ShopEnv(ref, max_steps=30)
    st = env.reset()
    assert st.observation.startswith("WebShop [SEP] Instruction: [SEP] i am looking for a usb microphone")
    assert st.observation.endswith(" [SEP] Search") and len(st.admissible_commands) == 1
    assert env.step("click[buy now]").observation == st.observation  # not on this page: nothing
    st = env.step("search[usb microphone]")
    assert "Page 1 (Total results: " in st.observation and "[SEP] Next > [SEP]" in st.observation
    assert "< Prev" not in st.observation and "click[b0881qz9xt]" in st.admissible_commands
    st = env.step("click[B0881QZ9XT]")  # the argument is lowercased, as in the text env
    assert "[SEP] color [SEP] black [SEP] white [SEP]" in st.observation
    assert st.observation.endswith("Price: $39.99 [SEP] Rating: N.A. [SEP] Description [SEP] "
                                   "Features [SEP] Reviews [SEP] Buy Now")
    assert {"click[white]", "click[features]", "click[< prev]"} <= set(st.admissible_commands)
    st = env.step("click[features]")
    assert st.observation.endswith("< Prev [SEP] Tap-to-mute button [SEP] RGB light")
    st = env.step("click[< prev]")
    assert "Buy Now" in st.observation
    st = env.step("think: white is the colour asked for")
    assert st.observation == "OK." and not st.done
    env.step("click[white]")
    st = env.step("click[buy now]")
    assert st.done and st.won and st.reward == 1.0 and "Your score" in st.observation
    assert env.info is not None and env.info.r_option == 1.0
    with pytest.raises(RuntimeError, match="over"):
        env.step("click[back to search]")


def test_paging_prev_next_and_back_to_search(built: Path) -> None:
    env = ShopEnv(find_games(built / "hidden" / "test")[0], max_steps=30, expert=True)
    env.reset()
    st = env.step("search[deodorant]")
    assert "Next >" in st.observation and len(env.hits()) <= 10
    st = env.step("click[next >]")
    assert "Page 2" in st.observation and "[SEP] < Prev [SEP] Next >" in st.observation
    assert st.expert_actions[0] == "click[< prev]" or st.expert_actions[0] == "click[back to search]"
    st = env.step("click[< prev]")
    assert "Page 1" in st.observation
    st = env.step("click[back to search]")
    assert st.observation.startswith("WebShop [SEP]") and st.expert_actions[0].startswith("search[")
    # from a wrong product the expert goes back and still reaches the target
    st = env.step("search[usb microphone]")
    wrong = next(c for c in st.admissible_commands if c.startswith("click[b0") and c != "click[b0881qz9xt]")
    env.step(wrong)
    while not env.state.done:
        env.step(env.state.expert_actions[0])
    assert env.state.won and env.state.reward == 1.0
