"""WebShop's pages as its text environment shows them (``observation_mode="text"``: the visible
text of the page's HTML joined with ``" [SEP] "``), and what can be clicked on each.

Clickables are named as ``WebAgentTextEnv.get_available_actions`` names them: the buttons' text
and the product links' ASINs lowercased, then the option values, in page order.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from autorl_gym.interactive.shop_data import PRODUCT_WINDOW

SEP = " [SEP] "
BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
END_BUTTON = "buy now"
SUB_PAGES = ("description", "features", "reviews")
PageKind = Literal["search", "results", "item", "sub", "done"]


class Page(BaseModel):
    """Where the shopper is: the page and the session's search, product and options."""

    kind: PageKind = "search"
    keywords: str | None = None
    page: int = 1
    asin: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    sub: str | None = None
    reward: float = 0.0


def _instruction(text: str) -> list[str]:
    return ["Instruction:", text]


def page_products(hits: list[str], page: int) -> list[str]:
    return hits[(page - 1) * PRODUCT_WINDOW:page * PRODUCT_WINDOW]


def render(page: Page, instruction: str, hits: list[str], by_asin: dict[str, Any]) -> str:
    """The text of ``page`` (``hits``: the ASINs the session's search returned)."""
    if page.kind == "search":
        parts = ["WebShop", *_instruction(instruction), "Search"]
    elif page.kind == "results":
        parts = [*_instruction(instruction), "Back to Search",
                 f"Page {page.page} (Total results: {len(hits)})"]
        parts += ["< Prev", "Next >"] if page.page > 1 else ["Next >"]
        for asin in page_products(hits, page.page):
            p = by_asin[asin]
            parts += [asin, p["Title"], p["Price"]]
    elif page.kind == "item":
        p = by_asin[page.asin]
        parts = [*_instruction(instruction), "Back to Search", "< Prev"]
        for name, values in p["options"].items():
            parts += [name, *values]
        parts += [p["Title"], f"Price: {p['Price']}", f"Rating: {p['Rating']}",
                  "Description", "Features", "Reviews", "Buy Now"]
    elif page.kind == "sub":
        p = by_asin[page.asin]
        parts = [*_instruction(instruction), "Back to Search", "< Prev"]
        if page.sub == "description":
            parts.append(p["Description"])
        elif page.sub == "features":
            parts += p["BulletPoints"]
        else:
            for r in p["Reviews"]:
                parts += [f'"{r.get("title", "")}"', str(r.get("score", "")), r.get("body", "")]
    else:
        parts = ["Thank you for shopping with us!", "Your score (min 0.0, max 1.0)",
                 f"{page.reward:.2f}"]
    return SEP.join(" ".join(str(x).split()) for x in parts if str(x).strip())


def clickables(page: Page, hits: list[str], by_asin: dict[str, Any]) -> list[str]:
    """What can be clicked on ``page``, as ``click[...]`` takes it."""
    if page.kind == "search":
        return ["search"]
    if page.kind == "results":
        buttons = [BACK_TO_SEARCH] + ([PREV_PAGE] if page.page > 1 else []) + [NEXT_PAGE]
        return buttons + [a.lower() for a in page_products(hits, page.page)]
    if page.kind == "item":
        values = [v for vs in by_asin[page.asin]["options"].values() for v in vs]
        return [BACK_TO_SEARCH, PREV_PAGE, *SUB_PAGES, END_BUTTON, *values]
    if page.kind == "sub":
        return [BACK_TO_SEARCH, PREV_PAGE]
    return []


def option_name(product: dict[str, Any], value: str) -> str | None:
    """The option a value belongs to (the first, as the page's radio buttons name it)."""
    for name, values in product["options"].items():
        if value in values:
            return name
    return None
