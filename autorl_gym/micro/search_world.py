"""Generated worlds for the micro DeepSearch scenario: entities with attributes and relations,
written out as short documents, and multi-hop questions whose answers need two or three searches.

Entities: countries, cities (in a country), companies (make a product, founded in a year, based
in a city, led by a person) and people (a job, born in a year, live in a city, work for a
company). Each has one document, titled with its name. The names come from one fixed pool shared
by every world (as TextWorld's games share its vocabulary); a world's seed draws its facts: who
works for whom, which city is where, ... so the same person works elsewhere in another world, and
a policy must read the documents it finds rather than remember them. A question follows a chain
of relations from a person (``the country of the city where the company that P works for is
based``): its expert is that chain of searches, then the answer, which no earlier document of the
chain holds. Everything is drawn from seeded ``random.Random``: a seed gives the same world byte
for byte.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from pydantic import BaseModel

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr",
          "kl", "st", "tr", "sh", "ch", "th", "qu"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
CODAS = ["", "", "n", "r", "l", "s", "x", "m", "th", "nd"]
SUFFIXES = ["Labs", "Works", "Group", "Systems", "Foods", "Motors"]
JOBS = ["painter", "teacher", "pilot", "doctor", "chemist", "lawyer", "baker", "farmer",
        "architect", "nurse", "engineer", "writer", "sailor", "judge", "tailor", "miner"]
PRODUCTS = ["glass", "bicycles", "paper", "shoes", "clocks", "tea", "cheese", "rope", "soap",
            "lamps", "pianos", "tiles", "maps", "boats", "radios", "candles"]


class Sizes(BaseModel):
    """A world's size (every world draws from the same pool of names)."""

    countries: int = 6
    cities: int = 16
    companies: int = 20
    people: int = 48
    questions: int = 25


POOL = Sizes(countries=8, cities=24, companies=32, people=80)


class Entity(BaseModel):
    kind: str
    name: str
    attrs: dict[str, str]


class WorldQuestion(BaseModel):
    id: str
    question: str
    answer: str
    answer_type: str
    category: str
    expert: list[str]
    hops: int


class World(BaseModel):
    seed: int
    entities: dict[str, Entity]
    questions: list[WorldQuestion]

    def vocab(self) -> list[str]:
        """Every name and attribute value (the engine's gazetteer of admissible arguments)."""
        values = set(self.entities)
        for e in self.entities.values():
            values.update(v for k, v in e.attrs.items())
        return sorted(values)


class _Names:
    def __init__(self, rng: random.Random, taken: set[str]):
        self.rng = rng
        self.used = set(taken)

    def word(self) -> str:
        while True:
            w = "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS)
                        for _ in range(self.rng.choice((1, 2, 2))))
            w = (w + self.rng.choice(CODAS)).capitalize()
            if 4 <= len(w) <= 9 and w not in self.used and w not in SUFFIXES:
                self.used.add(w)
                return w


def document(e: Entity) -> str:
    """The entity's document: its name on the first line, then what is known of it."""
    a, n = e.attrs, e.name
    if e.kind == "country":
        body = f"{n} is a country. The capital of {n} is {a['capital']}."
    elif e.kind == "city":
        body = f"{n} is a city in {a['country']}."
    elif e.kind == "company":
        body = (f"{n} makes {a['product']}. {n} was founded in {a['founded']}. {n} is based in "
                f"{a['city']}. {n} is led by {a['leader']}.")
    else:
        body = (f"{n} is a {a['job']}. {n} was born in {a['born']}. {n} lives in {a['city']}. "
                f"{n} works for {a['employer']}.")
    return f"{n}\n{body}\n"


def name_pool(pool: Sizes = POOL) -> dict[str, list[str]]:
    """The fixed pool of names every world draws from (unique words, so a name's search finds
    its own document first)."""
    names = _Names(random.Random("autorl-gym/deepsearch/names/v1"), set())
    return {"country": [names.word() for _ in range(pool.countries)],
            "city": [names.word() for _ in range(pool.cities)],
            "company": [f"{names.word()} {SUFFIXES[i % len(SUFFIXES)]}" for i in range(pool.companies)],
            "person": [f"{names.word()} {names.word()}" for _ in range(pool.people)]}


def _entities(rng: random.Random, sizes: Sizes) -> dict[str, Entity]:
    pool = name_pool()
    ents: dict[str, Entity] = {}
    countries = rng.sample(pool["country"], sizes.countries)
    cities = rng.sample(pool["city"], sizes.cities)
    city_country = {c: countries[i % len(countries)] for i, c in enumerate(cities)}
    for c in cities:
        ents[c] = Entity(kind="city", name=c, attrs={"country": city_country[c]})
    for k in countries:
        capital = next(c for c in cities if city_country[c] == k)
        ents[k] = Entity(kind="country", name=k, attrs={"capital": capital})
    people = rng.sample(pool["person"], sizes.people)
    companies = rng.sample(pool["company"], sizes.companies)
    leaders = rng.sample(people, len(companies))
    for co, leader in zip(companies, leaders, strict=True):
        ents[co] = Entity(kind="company", name=co, attrs={
            "product": rng.choice(PRODUCTS), "founded": str(rng.randint(1850, 2015)),
            "city": rng.choice(cities), "leader": leader})
    led = dict(zip(leaders, companies, strict=True))
    for p in people:
        ents[p] = Entity(kind="person", name=p, attrs={
            "job": rng.choice(JOBS), "born": str(rng.randint(1930, 2000)),
            "city": rng.choice(cities), "employer": led.get(p) or rng.choice(companies)})
    return ents


def _chains(p: Entity, ents: dict[str, Entity]) -> list[tuple[str, str, list[str], str, str]]:
    """(category, question, searched names, answer, answer type) for one person."""
    co = ents[p.attrs["employer"]]
    home = ents[p.attrs["city"]]
    hq = ents[co.attrs["city"]]
    boss = ents[co.attrs["leader"]]
    n, c = p.name, co.name
    out = [
        ("home_country", f"In which country is the city that {n} lives in?",
         [n, home.name], home.attrs["country"], "country"),
        ("employer_founded", f"In what year was the company that {n} works for founded?",
         [n, c], co.attrs["founded"], "year"),
        ("employer_product", f"What does the company that {n} works for make?",
         [n, c], co.attrs["product"], "product"),
        ("employer_city", f"In which city is the company that {n} works for based?",
         [n, c], co.attrs["city"], "city"),
        ("employer_country", f"In which country is the company that {n} works for based?",
         [n, c, hq.name], hq.attrs["country"], "country"),
        ("boss_job", f"What is the job of the person who leads the company that {n} works for?",
         [n, c, boss.name], boss.attrs["job"], "job"),
        ("boss_born", f"In what year was the person who leads the company that {n} works for born?",
         [n, c, boss.name], boss.attrs["born"], "year"),
    ]
    # a chain must not pass through the person again (someone who leads their own employer), and
    # no document read before the last may hold the answer (the boss's job being P's own, ...)
    return [q for q in out if len(set(q[2])) == len(q[2])
            and not any(re.search(rf"\b{re.escape(q[3])}\b", document(ents[x])) for x in q[2][:-1])]


def generate_world(seed: int, sizes: Sizes) -> World:
    """A world and its questions (each person asked at most one, categories balanced)."""
    rng = random.Random(f"autorl-gym/deepsearch/world/{seed}")
    ents = _entities(rng, sizes)
    people = sorted(e.name for e in ents.values() if e.kind == "person")
    rng.shuffle(people)
    questions: list[WorldQuestion] = []
    for i, name in enumerate(people):
        if len(questions) >= sizes.questions:
            break
        options = _chains(ents[name], ents)
        if not options:
            continue
        cat, text, chain, answer, atype = options[i % len(options)]
        questions.append(WorldQuestion(
            id=f"q{seed}_{len(questions):03d}", question=text, answer=answer, answer_type=atype,
            category=cat, expert=[f"search[{x}]" for x in chain] + [f"answer[{answer}]"],
            hops=len(chain)))
    return World(seed=seed, entities=ents, questions=questions)


def write_split(world: World, dest: Path, top_k: int = 1, snippet_chars: int = 200,
                with_answers: bool = True) -> None:
    """``dest/{search.json, vocab.json, docs/, questions/}`` for the deepsearch engine."""
    from autorl_gym.interactive.search import SearchSpec

    (dest / "docs").mkdir(parents=True, exist_ok=True)
    (dest / "questions").mkdir(parents=True, exist_ok=True)
    for i, e in enumerate(sorted(world.entities.values(), key=lambda e: e.name)):
        (dest / "docs" / f"d{i:04d}.txt").write_text(document(e), encoding="utf-8")
    for q in world.questions:
        row = q.model_dump(exclude={"hops"}) if with_answers else {"id": q.id, "question": q.question}
        (dest / "questions" / f"{q.id}.json").write_text(json.dumps(row, indent=1) + "\n")
    spec = SearchSpec(backend="bm25", documents="docs", top_k=top_k, snippet_chars=snippet_chars)
    (dest / "search.json").write_text(spec.model_dump_json(indent=2, exclude_none=True) + "\n")
    (dest / "vocab.json").write_text(json.dumps(world.vocab(), indent=0) + "\n")
