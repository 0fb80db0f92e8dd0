"""A WebShop catalogue in WebShop's own file layout, its BM25 search engine, and its goals.

A shop folder holds the product file and the attribute file of WebShop's data release
(``items_shuffle.json`` + ``items_ins_v2.json``, or the 1000-product ``items_shuffle_1000.json`` +
``items_ins_v2_1000.json``) and optionally ``index/``, a saved ``bm25s`` index of it (saved by
the builds that make a shop folder; otherwise the index is built in memory). Products are read as
``web_agent_site/engine/engine.py`` (``load_products``) reads them; the search engine is BM25 over
the documents the original indexes with Lucene (title, description, first bullet point, options;
lowercased), with Lucene's defaults (k1 0.9, b 0.4, Porter stemming, English stop words), 50 hits.

Goals (:func:`human_goals`) are built as ``get_human_goals`` builds them from
``items_human_ins.json``, and shuffled with ``random.seed(233)`` as the original does, so session
``i`` is the original's goal ``i``. Two draws the original leaves unseeded are seeded here: the
price of a product with a price range (uniform in the range, seeded by its ASIN) and the budget
``price_upper`` of each goal.
"""

from __future__ import annotations

import functools
import json
import random
import re
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

PRODUCT_FILES = (("items_shuffle.json", "items_ins_v2.json"),
                 ("items_shuffle_1000.json", "items_ins_v2_1000.json"))
HUMAN_INS_FILE = "items_human_ins.json"
INDEX_DIR = "index"
SEARCH_RETURN_N = 50
PRODUCT_WINDOW = 10
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
GOAL_SHUFFLE_SEED = 233
GOAL_PRICE_SEED = "autorl-gym/webshop/price-upper"
BM25_K1, BM25_B = 0.9, 0.4


class ShopDataError(ValueError):
    """A shop folder or file is missing or malformed; the message names it."""


def product_files(root: Path) -> tuple[Path, Path]:
    """The product file and attribute file in ``root`` (the full release first)."""
    for items, attrs in PRODUCT_FILES:
        if (root / items).is_file() and (root / attrs).is_file():
            return root / items, root / attrs
    names = " or ".join(f"{a} + {b}" for a, b in PRODUCT_FILES)
    raise ShopDataError(f"{root}: no WebShop product data (expected {names})")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShopDataError(f"{path}: unreadable JSON ({e.__class__.__name__}: {e})") from e


def _pricing(raw: Any) -> tuple[list[float], str]:
    if not raw:
        return [100.0], "$100.0"
    try:
        pricing = [float(Decimal(re.sub(r"[^\d.]", "", p))) for p in str(raw).split("$")[1:]]
    except ArithmeticError:
        return [100.0], "$100.0"
    if not pricing:
        return [100.0], "$100.0"
    if len(pricing) == 1:
        return pricing, f"${pricing[0]}"
    return pricing[:2], f"${pricing[0]} to ${pricing[1]}"


def _options(raw: Any) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for name, contents in (raw or {}).items():
        if contents is None:
            continue
        options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
    return options


def read_products(items_file: Path, attrs_file: Path) -> list[dict[str, Any]]:
    """The products of a WebShop product file, with the fields the pages and reward read."""
    raw = _read_json(items_file)
    attributes = _read_json(attrs_file)
    if not isinstance(raw, list) or not isinstance(attributes, dict):
        raise ShopDataError(f"{items_file}: expected a list of products and {attrs_file} a mapping")
    seen: set[str] = set()
    products = []
    for i, p in enumerate(raw):
        try:
            asin = p["asin"]
            if asin == "nan" or len(asin) > 10 or asin in seen:
                continue
            seen.add(asin)
            pricing, price_tag = _pricing(p.get("pricing"))
            bullets = p["small_description"]
            products.append({
                "asin": asin, "name": p["name"], "Title": p["name"], "category": p["category"],
                "query": p["query"].lower().strip(), "product_category": p["product_category"],
                "Description": p["full_description"],
                "BulletPoints": bullets if isinstance(bullets, list) else [bullets],
                "pricing": pricing, "Price": price_tag, "Rating": "N.A.", "Reviews": [],
                "options": _options(p.get("customization_options")),
                "Attributes": attributes.get(asin, {}).get("attributes") or ["DUMMY_ATTR"],
            })
        except (KeyError, TypeError, AttributeError) as e:
            raise ShopDataError(f"{items_file}: product #{i} lacks a field WebShop reads ({e})") from e
    return products


def product_price(product: dict[str, Any]) -> float:
    """The price paid: the single price, or a draw in the range seeded by the ASIN."""
    pricing = product["pricing"]
    if len(pricing) == 1:
        return float(pricing[0])
    return random.Random(f"autorl-gym/webshop/price/{product['asin']}").uniform(*pricing[:2])


def document(product: dict[str, Any]) -> str:
    """What the search engine indexes for a product (``convert_product_file_format.py``)."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}"
                                for name, values in product["options"].items())
    bullet = product["BulletPoints"][0] if product["BulletPoints"] else ""
    return " ".join([product["Title"], product["Description"], bullet, option_text]).lower()


@functools.cache
def _stemmer():  # noqa: ANN202
    import Stemmer

    return Stemmer.Stemmer("porter")


class Shop:
    """The products of one shop folder and a BM25 index over them."""

    def __init__(self, root: Path, save_index: bool = False):
        """``save_index``: write the BM25 index to ``root/index`` (the builds do, into folders
        they own); a saved index is loaded when present."""
        self.root = root
        self._save = save_index
        items, attrs = product_files(root)
        self.products = read_products(items, attrs)
        if not self.products:
            raise ShopDataError(f"{items}: no products")
        self.by_asin = {p["asin"]: p for p in self.products}
        self.prices = {p["asin"]: product_price(p) for p in self.products}
        self._retriever = self._index()
        self._lock = threading.Lock()
        self._hits: dict[str, list[str]] = {}

    def _index(self):  # noqa: ANN202
        import bm25s

        saved = self.root / INDEX_DIR
        if (saved / "params.index.json").is_file():
            return bm25s.BM25.load(str(saved))
        corpus = bm25s.tokenize([document(p) for p in self.products], stopwords="en",
                                stemmer=_stemmer(), show_progress=False)
        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
        retriever.index(corpus, show_progress=False)
        if self._save:
            retriever.save(str(saved))
        return retriever

    def search(self, query: str) -> list[str]:
        """The ASINs of the top hits for ``query`` (at most SEARCH_RETURN_N), best first."""
        key = " ".join(query.lower().split())
        with self._lock:
            if key in self._hits:
                return self._hits[key]
        import bm25s

        tokens = bm25s.tokenize([key], stopwords="en", stemmer=_stemmer(), show_progress=False)
        hits: list[str] = []
        if tokens.ids and tokens.ids[0]:
            k = min(SEARCH_RETURN_N, len(self.products))
            docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
            hits = [self.products[int(d)]["asin"] for d, s in zip(docs[0], scores[0], strict=True)
                    if s > 0]
        with self._lock:
            self._hits[key] = hits
        return hits


_SHOPS: dict[Path, Shop] = {}
_SHOPS_LOCK = threading.Lock()


def open_shop(root: str | Path) -> Shop:
    """The shop of a folder, loaded once per process."""
    key = Path(root).resolve()
    with _SHOPS_LOCK:
        if key not in _SHOPS:
            _SHOPS[key] = Shop(key)
        return _SHOPS[key]


def human_goals(products: list[dict[str, Any]], prices: dict[str, float],
                human_ins: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of ``items_human_ins.json``, in the original's session order."""
    rng = random.Random(GOAL_PRICE_SEED)
    goals = []
    for item in products:
        asin = item["asin"]
        for ins in human_ins.get(asin) or []:
            attributes = ins.get("instruction_attributes") or []
            if not attributes:
                continue
            price_range = [p for p in PRICE_RANGE if p > prices[asin]][:4]
            if len(price_range) >= 2:
                _, price_upper = sorted(rng.sample(price_range, 2))
                price_text = f", and price lower than {price_upper:.2f} dollars"
            else:
                price_upper, price_text = 1000000.0, ""
            goals.append({
                "asin": asin, "category": item["category"], "query": item["query"],
                "name": item["name"], "product_category": item["product_category"],
                "instruction_text": ins["instruction"].strip(".") + price_text,
                "attributes": attributes, "price_upper": price_upper,
                "goal_options": ins.get("instruction_options") or [], "weight": 1,
            })
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def price_clause(goal_price: float) -> str:
    return f", and price lower than {goal_price:.2f} dollars"
