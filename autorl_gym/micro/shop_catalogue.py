"""A generated WebShop catalogue and generated instructions, in WebShop's own file layout.

Product types (a noun, its search query and category path, a pool of attributes, option kinds
with their values), products drawn from them (a made-up brand, attributes, a subset of each
option's values, a price), written as ``items_shuffle.json`` and ``items_ins_v2.json`` records;
goals (an instruction naming the target product's type, some of its attributes and option
values, and a budget as the original draws it) drawn per split from disjoint seeds.
Deterministic for given seeds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.interactive.shop_data import PRICE_RANGE


class ProductType(BaseModel):
    noun: str
    category: str
    attributes: list[str]
    options: dict[str, list[str]]


COLORS = ["black", "white", "navy", "red", "green", "grey", "pink", "beige"]
SIZES = ["small", "medium", "large", "x-large"]
TYPES = [
    ProductType(noun="deodorant", category="Beauty & Personal Care › Personal Care › Deodorants",
                attributes=["aluminum free", "sensitive skin", "long lasting", "travel size", "vegan"],
                options={"scent": ["citrus", "lavender", "sage", "unscented"],
                         "size": ["2 ounce", "3 ounce", "4 ounce"]}),
    ProductType(noun="shampoo", category="Beauty & Personal Care › Hair Care › Shampoos",
                attributes=["sulfate free", "paraben free", "dry hair", "tea tree", "color safe"],
                options={"size": ["8 fl oz", "12 fl oz", "16 fl oz"],
                         "scent": ["mint", "coconut", "argan", "rose"]}),
    ProductType(noun="t-shirt", category="Clothing › Men › Shirts › T-Shirts",
                attributes=["cotton", "slim fit", "machine wash", "short sleeve", "crew neck"],
                options={"color": COLORS, "size": SIZES}),
    ProductType(noun="headphones", category="Electronics › Headphones › Over-Ear Headphones",
                attributes=["noise cancelling", "wireless", "bluetooth", "long battery", "foldable"],
                options={"color": ["black", "white", "blue", "silver"]}),
    ProductType(noun="coffee", category="Grocery & Gourmet Food › Beverages › Coffee",
                attributes=["organic", "dark roast", "fair trade", "whole bean", "decaf"],
                options={"flavor": ["vanilla", "hazelnut", "caramel", "original"],
                         "size": ["12 ounce", "2 pound", "5 pound"]}),
    ProductType(noun="candle", category="Home & Kitchen › Home Decor › Candles",
                attributes=["soy wax", "long burning", "non toxic", "gift set", "lead free"],
                options={"scent": ["vanilla", "lavender", "pine", "ocean"],
                         "size": ["8 oz", "14 oz"]}),
    ProductType(noun="backpack", category="Luggage › Backpacks › Laptop Backpacks",
                attributes=["water resistant", "laptop sleeve", "lightweight", "usb charging", "anti theft"],
                options={"color": COLORS}),
    ProductType(noun="socks", category="Clothing › Women › Socks & Hosiery › Socks",
                attributes=["cotton", "moisture wicking", "cushioned", "ankle", "breathable"],
                options={"color": COLORS, "size": ["small", "medium", "large"]}),
    ProductType(noun="phone case", category="Electronics › Cell Phones › Cases",
                attributes=["shockproof", "slim", "clear", "wireless charging", "kickstand"],
                options={"color": ["black", "clear", "blue", "purple"],
                         "model": ["iphone 13", "iphone 14", "galaxy s22"]}),
    ProductType(noun="tea", category="Grocery & Gourmet Food › Beverages › Tea › Green Tea",
                attributes=["organic", "caffeine free", "loose leaf", "gluten free", "non gmo"],
                options={"flavor": ["jasmine", "mint", "lemon", "ginger"],
                         "size": ["20 count", "50 count", "100 count"]}),
]
SYLLABLES = ["zor", "vik", "lum", "ta", "bri", "ko", "nel", "sa", "mo", "dex", "ra", "pin",
             "quo", "fel", "tri", "ga"]
OPENERS = ["i need", "i am looking for", "i want", "find me", "im looking for", "get me"]


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(2))


def make_products(n_per_type: int, seed: int) -> list[dict[str, Any]]:
    """Products in ``items_shuffle.json``'s record format, plus their ``Attributes``."""
    rng = random.Random(f"autorl-gym/micro-webshop/products/{seed}")
    products, seen = [], set()
    for t in TYPES:
        for _ in range(n_per_type):
            asin = "B0" + "".join(rng.choice("0123456789") for _ in range(8))
            while asin in seen:
                asin = "B0" + "".join(rng.choice("0123456789") for _ in range(8))
            seen.add(asin)
            attrs = rng.sample(t.attributes, rng.choice((2, 3)))
            shown = attrs[:rng.choice((1, 2))]
            brand = _brand(rng)
            title = f"{brand} {' '.join(shown)} {t.noun}"
            options = {name: sorted(rng.sample(values, min(len(values), rng.choice((2, 3)))),
                                    key=values.index)
                       for name, values in t.options.items()}
            price = round(rng.uniform(5, 60), 2)
            products.append({
                "asin": asin, "name": title, "category": t.category.split(" › ")[0].lower(),
                "query": t.noun, "product_category": t.category,
                "full_description": f"the {brand} {t.noun}: {', '.join(attrs)}.",
                "small_description": [f"{a}" for a in attrs],
                "pricing": f"${price:.2f}",
                "customization_options": {k: [{"value": v, "image": None} for v in vs]
                                          for k, vs in options.items()},
                "images": [""], "Attributes": attrs,
            })
    rng.shuffle(products)
    return products


def make_goal(products: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """One instruction for a random target product (the original's goal record)."""
    p = rng.choice(products)
    attrs = rng.sample(p["Attributes"], rng.choice((1, 2)))
    names = list(p["customization_options"])
    picked = rng.sample(names, min(len(names), rng.choice((1, 2))))
    values = [rng.choice(p["customization_options"][n])["value"] for n in picked]
    price = float(p["pricing"].lstrip("$"))
    price_range = [x for x in PRICE_RANGE if x > price][:4]
    _, upper = sorted(rng.sample(price_range, 2))
    opts = " and ".join(f"{n} {v}" if rng.random() < 0.5 else v for n, v in zip(picked, values, strict=True))
    text = f"{rng.choice(OPENERS)} {' '.join(attrs)} {p['query']}, {opts}"
    return {"asin": p["asin"], "category": p["category"], "query": p["query"], "name": p["name"],
            "product_category": p["product_category"],
            "instruction_text": f"{text}, and price lower than {upper:.2f} dollars",
            "attributes": attrs, "price_upper": upper, "goal_options": values, "weight": 1}


def make_goals(products: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"autorl-gym/micro-webshop/goals/{seed}")
    return [make_goal(products, rng) for _ in range(n)]


def write_shop(shop_dir: Path, products: list[dict[str, Any]]) -> None:
    """``items_shuffle.json`` and ``items_ins_v2.json`` in WebShop's record formats."""
    shop_dir.mkdir(parents=True, exist_ok=True)
    items = [{k: v for k, v in p.items() if k != "Attributes"} for p in products]
    attrs = {p["asin"]: {"attributes": p["Attributes"], "instruction": None,
                         "instruction_attributes": None} for p in products}
    (shop_dir / "items_shuffle.json").write_text(json.dumps(items), encoding="utf-8")
    (shop_dir / "items_ins_v2.json").write_text(json.dumps(attrs), encoding="utf-8")
