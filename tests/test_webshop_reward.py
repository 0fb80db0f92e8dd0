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
