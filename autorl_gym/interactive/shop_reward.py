"""WebShop's reward for a purchase, as ``web_agent_site/engine/goal.py`` (``get_reward``) computes it.

    reward = r_type * (attributes matched + options matched + price ok)
                    / (goal attributes + goal options + 1)

* **attributes**: a goal attribute is matched when one of the product's attributes has a fuzzy
  token-set ratio above 85 with it (``thefuzz``, as the original), or else when it occurs in the
  product's title, bullet points or description (lowercased).
* **options**: a goal option is matched when one of the chosen option values does (ratio > 85),
  after both are mapped to the first colour name they contain (``normalize_color``). Where the
  goal's ``goal_options`` is a dict (WebShop's synthetic goals, option name -> value), the original
  compares against its ``items()``: each goal option is the pair ``(name, value)``, which
  ``normalize_color`` maps to a colour only when the value *is* one, and which ``thefuzz`` reads as
  the text ``"('name', 'value')"`` (so ``x-large`` does not match ``{'size': 'large'}`` there,
  ratio 83, where it matches the bare value ``large``, ratio 100). That is what is scored here.
* **price**: 1 when the price paid is at most the goal's ``price_upper``.
* **r_type** (``get_type_reward``): 1.0, but 0.5 when neither the product's search query, nor two
  of its category levels, nor more than 20% of the goal name's nouns match; 0.1 when under 10% of
  the nouns match, 0.0 when none does.

The nouns of a product name come from spaCy's ``en_core_web_sm`` tagger (NOUN, PROPN), as in
the original, when that model is installed; it is not on PyPI, so otherwise the content words of
spaCy's English tokenizer stand in (alphabetic tokens that are not stop words). Which one is in
use is :data:`NOUNS_FROM` after the first call; both sides of a comparison always use the same.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

COLOR_SET = [
    'alabaster', 'apricot', 'aqua', 'ash', 'asphalt', 'azure',
    'banana', 'beige', 'black', 'blue', 'blush', 'bordeaux', 'bronze',
    'brown', 'burgundy', 'camel', 'camo', 'caramel', 'champagne',
    'charcoal', 'cheetah', 'chestnut', 'chocolate', 'christmas', 'coffee',
    'cognac', 'copper', 'coral', 'cranberry', 'cream', 'crystal', 'dark',
    'denim', 'eggplant', 'elephant', 'espresso', 'fuchsia', 'gold', 'granite',
    'grape', 'graphite', 'grass', 'gray', 'green', 'grey', 'heather', 'indigo',
    'ivory', 'ivy', 'khaki', 'lavender', 'lemon', 'leopard', 'light', 'lilac',
    'lime', 'magenta', 'maroon', 'mauve', 'merlot', 'midnight', 'mint', 'mocha',
    'multicolor', 'mushroom', 'mustard', 'natural', 'navy', 'nude', 'olive',
    'orange', 'peach', 'pewter', 'pink', 'plum', 'purple', 'rainbow', 'red',
    'rose', 'royal', 'rust', 'sand', 'sapphire', 'seashell', 'silver', 'skull',
    'slate', 'steel', 'stone', 'stonewash', 'sunflower', 'tan', 'taupe', 'teal',
    'tiger', 'turquoise', 'violet', 'walnut', 'wheat', 'white', 'wine', 'yellow',
]
FUZZ_THRESHOLD = 85
NOUNS_FROM: str | None = None   # "en_core_web_sm" or "tokenizer content words", once known


class RewardInfo(BaseModel):
    """The reward and its parts (the original's ``verbose`` info)."""

    reward: float
    r_type: float
    r_att: float
    r_option: float | None
    r_price: bool
    query_match: bool
    category_match: bool
    title_score: float
    attributes_matched: int
    options_matched: int


def normalize_color(color_string: Any) -> Any:
    """The first colour of COLOR_SET found in the string, else the string itself (a goal's
    ``(name, value)`` pair, as the original passes it, holds a colour only as an element)."""
    for norm_color in COLOR_SET:
        if norm_color in color_string:
            return norm_color
    return color_string


@functools.cache
def _nlp():  # noqa: ANN202
    global NOUNS_FROM
    import spacy

    try:
        nlp = spacy.load("en_core_web_sm")
        NOUNS_FROM = "en_core_web_sm"
    except OSError:
        nlp = spacy.blank("en")
        NOUNS_FROM = "tokenizer content words"
    return nlp


@functools.lru_cache(maxsize=65536)
def type_nouns(name: str) -> tuple[str, ...]:
    """The lowercased nouns of a product name (see the module's note on the tagger)."""
    nlp = _nlp()
    doc = nlp(name)
    if NOUNS_FROM == "en_core_web_sm":
        return tuple(t.text.lower() for t in doc if t.pos_ in ("PNOUN", "NOUN", "PROPN"))
    return tuple(t.text.lower() for t in doc if t.is_alpha and not t.is_stop)


def _fuzzy(a: Any, b: Any) -> int:
    from thefuzz import fuzz

    return fuzz.token_set_ratio(a, b)


def get_type_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the purchased product is of the goal's type: query, category and name nouns."""
    query_match = purchased["query"] == goal["query"]
    p_cat = {x.strip() for x in purchased["product_category"].split("›")}
    g_cat = {x.strip() for x in goal["product_category"].split("›")}
    category_match = len(p_cat & g_cat) >= 2
    p_nouns, g_nouns = type_nouns(purchased["name"]), type_nouns(goal["name"])
    n_intersect = len(set(p_nouns) & set(g_nouns))
    title_score = 0.2 if not g_nouns else n_intersect / len(g_nouns)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def get_attribute_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any]) -> tuple[float, int]:
    """Fraction and number of the goal's attributes the product has."""
    p_attrs = purchased["Attributes"]
    g_attrs = goal["attributes"]
    matches = 0
    for g_attr in g_attrs:
        fuzzy = any(_fuzzy(p_attr, g_attr) > FUZZ_THRESHOLD for p_attr in p_attrs)
        if fuzzy or (g_attr in purchased["Title"].lower()
                     or g_attr in " ".join(purchased["BulletPoints"]).lower()
                     or g_attr in purchased["Description"].lower()):
            matches += 1
    return matches / len(g_attrs), matches


def get_option_reward(purchased_options: Iterable[str], goal_options: Iterable[Any]
                      ) -> tuple[float | None, int]:
    """Fraction (None without goal options) and number of the goal's options chosen."""
    chosen = [normalize_color(o) for o in purchased_options]
    wanted = [normalize_color(o) for o in goal_options]
    matches = sum(1 for g in wanted if any(_fuzzy(p, g) > FUZZ_THRESHOLD for p in chosen))
    return (matches / len(wanted) if wanted else None), matches


def goal_option_values(goal: Mapping[str, Any]) -> list[str]:
    """The goal's option values (human goals hold a list; synthetic goals a name -> value map),
    for choosing options; the reward compares :func:`goal_options_as_scored` instead."""
    opts = goal["goal_options"]
    return list(opts.values()) if isinstance(opts, Mapping) else list(opts)


def goal_options_as_scored(goal: Mapping[str, Any]) -> list[Any]:
    """The goal options as WebShop's ``get_reward`` hands them to ``get_option_reward``:
    ``goal_options.items()`` (``(name, value)`` pairs) for a dict, the list itself otherwise."""
    opts = goal["goal_options"]
    return list(opts.items()) if isinstance(opts, dict) else list(opts)


def get_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any], price: float,
               options: Mapping[str, str]) -> RewardInfo:
    """The reward of buying ``purchased`` at ``price`` with the chosen ``options`` (name -> value)."""
    t = get_type_reward(purchased, goal)
    r_price = price <= goal["price_upper"] if goal["price_upper"] > 0 else None
    r_att, n_att = get_attribute_reward(purchased, goal)
    g_opts = goal_options_as_scored(goal)
    r_option, n_opt = get_option_reward(list(options.values()), g_opts)
    total = (n_att + n_opt + bool(r_price)) / (len(goal["attributes"]) + len(g_opts) + 1)
    return RewardInfo(reward=total * t["r_type"], r_type=t["r_type"], r_att=r_att, r_option=r_option,
                      r_price=bool(r_price), query_match=t["query_match"],
                      category_match=t["category_match"], title_score=t["title_score"],
                      attributes_matched=n_att, options_matched=n_opt)
