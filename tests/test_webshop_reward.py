"""WebShop's reward (web_agent_site/engine/goal.py get_reward) on hand-built cases."""

from __future__ import annotations

import pytest

from autorl_gym.interactive.shop_reward import (
    get_attribute_reward,
    get_option_reward,
    get_reward,
    get_type_reward,
    normalize_color,
)

PRODUCT = {
    "asin": "B000000001", "name": "Bright Citrus Deodorant for Sensitive Skin",
    "Title": "Bright Citrus Deodorant for Sensitive Skin", "query": "deodorant",
    "product_category": "Beauty & Personal Care › Personal Care › Deodorants",
    "Attributes": ["sensitive skin", "aluminum free"],
    "BulletPoints": ["Calendula soothes skin", "Long lasting odor protection"],
    "Description": "A natural deodorant.",
}
GOAL = {
    "asin": "B000000001", "query": "deodorant", "name": PRODUCT["name"],
    "product_category": PRODUCT["product_category"],
    "attributes": ["sensitive skin", "aluminum free"],
    "goal_options": ["bright citrus", "3 ounce (pack of 1)"], "price_upper": 30.0,
}
RIGHT = {"scent": "bright citrus", "size": "3 ounce (pack of 1)"}


def test_exact_match_scores_one() -> None:
    info = get_reward(PRODUCT, GOAL, price=10.99, options=RIGHT)
    assert info.reward == 1.0 and info.r_type == 1.0 and info.r_att == 1.0 and info.r_option == 1.0


def test_a_wrong_option_lowers_the_reward() -> None:
    info = get_reward(PRODUCT, GOAL, price=10.99, options={**RIGHT, "scent": "calming lavender"})
    assert info.options_matched == 1
    assert info.reward == pytest.approx(4 / 5)  # (2 attributes + 1 option + price) / (2 + 2 + 1)
    assert get_reward(PRODUCT, GOAL, price=10.99, options={}).reward == pytest.approx(3 / 5)


def test_over_budget_lowers_the_reward() -> None:
    info = get_reward(PRODUCT, GOAL, price=31.0, options=RIGHT)
    assert not info.r_price and info.reward == pytest.approx(4 / 5)
    assert get_reward(PRODUCT, GOAL, price=30.0, options=RIGHT).reward == 1.0  # at the budget: ok


def test_the_original_formula_on_a_partial_purchase() -> None:
    """One attribute by fuzzy match, one found only in the bullet points, one missing; one option
    through colour normalisation ("navy blue" -> "blue"); over budget; neither query nor category
    match and 10-20% of the name's nouns do (r_type 0.5): (2 + 1 + 0) / (3 + 2 + 1) * 0.5."""
    other = {**PRODUCT, "name": "Gel Stick Refill", "Title": "Gel Stick Refill", "query": "antiperspirant",
             "Attributes": ["sensitive skins"], "BulletPoints": ["long lasting"]}
    goal = {**GOAL, "name": "Sensitive Gel Deodorant Pack Dozen Bright Citrus Scent Travel Box",
            "attributes": ["sensitive skin", "long lasting", "vegan"],
            "goal_options": ["blue", "large"], "product_category": "Beauty › Other"}
    t = get_type_reward(other, goal)
    assert not t["query_match"] and not t["category_match"]
    assert 0.1 <= t["title_score"] <= 0.2 and t["r_type"] == 0.5
    assert get_attribute_reward(other, goal) == (pytest.approx(2 / 3), 2)
    assert get_option_reward(["navy blue", "small"], goal["goal_options"]) == (0.5, 1)
    info = get_reward(other, goal, price=40.0, options={"color": "navy blue", "size": "small"})
    assert info.reward == pytest.approx((2 + 1 + 0) / (3 + 2 + 1) * 0.5)


def test_type_reward_steps() -> None:
    unrelated = {**PRODUCT, "name": "Garden Hose", "query": "hose", "product_category": "Garden › Hoses"}
    assert get_type_reward(unrelated, GOAL)["r_type"] == 0.0
    assert get_reward(unrelated, GOAL, price=10.0, options=RIGHT).reward == 0.0
    same_query = {**PRODUCT, "name": "Garden Hose"}
    assert get_type_reward(same_query, GOAL)["r_type"] == 0.0  # no shared noun: 0 whatever the query


def test_no_goal_options_and_colour_normalisation() -> None:
    assert normalize_color("dark navy blue") == "blue" and normalize_color("3 ounce") == "3 ounce"
    assert get_option_reward(["x"], []) == (None, 0)
    info = get_reward(PRODUCT, {**GOAL, "goal_options": []}, price=1.0, options={})
    assert info.reward == 1.0 and info.r_option is None


# WebShop's own get_option_reward, verbatim (web_agent_site/engine/goal.py, princeton-nlp/WebShop,
# MIT License, Copyright (c) 2023 Princeton Natural Language Processing), the reference below.
def _original_get_option_reward(purchased_options, goal_options):
    from thefuzz import fuzz

    purchased_options = [normalize_color(o) for o in purchased_options]
    goal_options = [normalize_color(o) for o in goal_options]
    num_option_matches = 0
    for g_option in goal_options:
        for p_option in purchased_options:
            score = fuzz.token_set_ratio(p_option, g_option)
            if score > 85:
                num_option_matches += 1
                break
    r_option = num_option_matches / len(goal_options) if len(goal_options) > 0 else None
    return r_option, num_option_matches


def _original_options(goal):
    """What the original get_reward hands get_option_reward (its own expression)."""
    return goal['goal_options'].items() if isinstance(goal['goal_options'], dict) else goal['goal_options']


def test_dict_goal_options_are_scored_as_webshop_scores_them() -> None:
    """A synthetic goal (goal_options a name -> value dict): the original compares the chosen
    values with the (name, value) pairs, so 'x-large' misses {'size': 'large'} (83 <= 85) where
    the bare value would match (100), and 'navy blue' still matches {'color': 'navy blue'}."""
    goal = GOAL | {"goal_options": {"size": "large", "color": "navy blue"}}
    chosen = {"size": "x-large", "color": "navy blue"}
    info = get_reward(PRODUCT, goal, 20.0, chosen)
    assert info.options_matched == 1 and info.r_option == 0.5
    assert _original_get_option_reward(list(chosen.values()), _original_options(goal)) == (0.5, 1)
    assert get_option_reward(list(chosen.values()), ["large", "navy blue"]) == (1.0, 2)  # as values
    assert info.reward == pytest.approx((2 + 1 + 1) / (2 + 2 + 1))


def test_option_reward_equals_the_originals_on_varied_goals() -> None:
    import random

    rng = random.Random(5)
    values = {"size": ["small", "large", "x-large", "3 ounce (pack of 1)", "6 ounce (pack of 2)"],
              "color": ["black", "navy blue", "light grey", "rose gold", "white | black", "natural"],
              "style": ["classic", "modern classic", "slim fit", "bright citrus"]}
    differ_from_values = 0
    for _ in range(300):
        names = rng.sample(sorted(values), rng.randint(1, 3))
        opts = {n: rng.choice(values[n]) for n in names}
        goal = GOAL | {"goal_options": opts if rng.random() < 0.7 else list(opts.values())}
        chosen = {n: rng.choice(values[n]) for n in names}
        info = get_reward(PRODUCT, goal, 20.0, chosen)
        r, n = _original_get_option_reward(list(chosen.values()), _original_options(goal))
        assert (info.r_option, info.options_matched) == (r, n), (goal["goal_options"], chosen)
        differ_from_values += n != get_option_reward(list(chosen.values()), list(opts.values()))[1]
    assert differ_from_values > 0   # the dict case is a different rule, and it is exercised
