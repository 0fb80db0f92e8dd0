"""WebShop sessions played one command at a time: :class:`ShopEnv`, and the ``webshop`` engine.

A session is one file ``<name>.shop.json`` (:class:`ShopSession`): the goal (the instruction and
the target product's ASIN, attributes, options and budget) and where its shop is (a folder in
WebShop's layout, relative to the file). Commands are the text environment's:
``search[keywords]`` (from any page, as in ``WebAgentTextEnv``) and ``click[name]`` for a
clickable of the current page; anything else leaves the page as it is. ``click[buy now]`` ends
the session with WebShop's reward (:mod:`autorl_gym.interactive.shop_reward`); the session is
won when that reward is at least :data:`SUCCESS_REWARD`. A thought (``think: ...`` or
``think[...]``) costs a step and changes nothing.

The admissible commands are the page's clickables as ``click[...]``; on the search page, the one
search the original's baselines always offer, the instruction itself (``search[<instruction>]``):
any other ``search[...]`` is accepted too. The expert (``expert=True``) plans from the current
page to the target: search the instruction when the target is among its hits, else the target's
title words; page to the target, click it, click each goal option, buy. On the page of another
product whose purchase with the goal's options would already win (reward >= SUCCESS_REWARD, the
success the evaluator counts), it finishes that purchase instead of going back: its label at
every state leads to a win by the shortest way it knows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from autorl_gym.interactive.engines import register_engine
from autorl_gym.interactive.shop_data import PRODUCT_WINDOW, Shop, open_shop
from autorl_gym.interactive.shop_pages import (
    BACK_TO_SEARCH,
    END_BUTTON,
    NEXT_PAGE,
    PREV_PAGE,
    SUB_PAGES,
    Page,
    clickables,
    option_name,
    render,
)
from autorl_gym.interactive.shop_reward import (
    FUZZ_THRESHOLD,
    RewardInfo,
    get_reward,
    goal_option_values,
    normalize_color,
)
from autorl_gym.interactive.state import THINK_PREFIX, GameNotFound, GameRef, GameState

SUFFIX = ".shop.json"
SUCCESS_REWARD = 0.5
_ACTION_RE = re.compile(r"(.+)\[(.+)\]")


class ShopSession(BaseModel):
    """One shopping session: the goal and the shop it is played in."""

    session: int = Field(description="the goal's index (the original's session number)")
    name: str
    shop: str = Field(description="the shop folder, relative to this file's folder")
    goal: dict[str, Any]

    def shop_dir(self, path: Path) -> Path:
        return path.parent / self.shop


def read_session(path: Path) -> ShopSession:
    try:
        return ShopSession.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as e:
        raise GameNotFound(f"{path}: not a WebShop session file ({e.__class__.__name__}: "
                           f"{str(e)[:200]})") from e


def write_session(path: Path, session: ShopSession) -> None:
    path.write_text(session.model_dump_json() + "\n", encoding="utf-8")


def parse_command(command: str) -> tuple[str, str | None]:
    m = _ACTION_RE.match(command)
    if m is None:
        return command, None
    return m.group(1).strip().lower(), m.group(2).lower()


def instruction_query(goal: dict[str, Any]) -> str:
    """The search the admissible list offers: the instruction, lowercased (brackets dropped)."""
    return " ".join(re.sub(r"[\[\]]", " ", goal["instruction_text"].lower()).split())


class ShopEnv:
    """One WebShop session (reset/step as :class:`~autorl_gym.interactive.env.GameEnv`)."""

    def __init__(self, ref: GameRef | str | Path, max_steps: int = 15, expert: bool = False):
        self.ref = ref if isinstance(ref, GameRef) else shop_ref(Path(ref))
        self.spec = read_session(self.ref.path)
        self.goal = self.spec.goal
        self.shop: Shop = open_shop(self.spec.shop_dir(self.ref.path))
        if self.goal.get("asin") not in self.shop.by_asin:
            raise GameNotFound(f"{self.ref.path}: target {self.goal.get('asin')!r} is not in "
                               f"the shop at {self.shop.root}")
        self.max_steps = max_steps
        self.expert = expert
        self.page = Page()
        self.info: RewardInfo | None = None
        self._state: GameState | None = None
        self._expert_query: str | None = None

    # -- the pages -----------------------------------------------------------------------
    def hits(self) -> list[str]:
        return self.shop.search(self.page.keywords) if self.page.keywords else []

    def observation(self) -> str:
        return render(self.page, self.goal["instruction_text"], self.hits(), self.shop.by_asin)

    def admissible(self) -> list[str]:
        names = clickables(self.page, self.hits(), self.shop.by_asin)
        if self.page.kind == "search":
            return [f"search[{instruction_query(self.goal)}]"]
        return [f"click[{c}]" for c in names]

    def _apply(self, command: str) -> None:
        """The text environment's semantics of one command (an invalid one does nothing)."""
        name, arg = parse_command(command)
        p = self.page
        if name == "search" and arg and arg.strip():
            self.page = Page(kind="results", keywords=arg.strip(), page=1)
            return
        if name != "click" or not arg or arg == "search":
            return
        if arg not in clickables(p, self.hits(), self.shop.by_asin):
            return
        if arg == END_BUTTON:
            self._buy()
        elif arg == BACK_TO_SEARCH:
            self.page = Page()
        elif arg == NEXT_PAGE and p.kind == "results":
            self.page = p.model_copy(update={"page": p.page + 1})
        elif arg == PREV_PAGE and p.kind == "results":
            self.page = p.model_copy(update={"page": p.page - 1})
        elif arg == PREV_PAGE and p.kind == "sub":
            self.page = p.model_copy(update={"kind": "item", "sub": None})
        elif arg == PREV_PAGE and p.kind == "item":
            self.page = p.model_copy(update={"kind": "results", "asin": None, "options": {}})
        elif arg in SUB_PAGES:
            self.page = p.model_copy(update={"kind": "sub", "sub": arg})
        elif p.kind == "results":
            self.page = p.model_copy(update={"kind": "item", "asin": arg.upper(), "options": {}})
        else:  # an option of the item page
            opt = option_name(self.shop.by_asin[p.asin], arg)
            if opt is not None:
                self.page = p.model_copy(update={"options": {**p.options, opt: arg}})

    def _buy(self) -> None:
        asin = self.page.asin
        assert asin is not None
        self.info = get_reward(self.shop.by_asin[asin], self.goal, self.shop.prices[asin],
                               self.page.options)
        self.page = self.page.model_copy(update={"kind": "done", "reward": self.info.reward})

    # -- the expert ------------------------------------------------------------------------
    def expert_query(self) -> str | None:
        """The instruction when its hits hold the target, else the target's title words (None
        when neither finds it)."""
        if self._expert_query is None:
            target = self.goal["asin"]
            title = " ".join(re.sub(r"[\[\]]", " ", self.shop.by_asin[target]["Title"].lower()).split())
            for q in (instruction_query(self.goal), title):
                if target in self.shop.search(q):
                    self._expert_query = q
                    break
            else:
                self._expert_query = ""
        return self._expert_query or None

    def goal_clicks(self, asin: str, chosen: dict[str, str]) -> list[str]:
        """Clicks on the item page that select the goal's options (those the product has)."""
        product = self.shop.by_asin[asin]
        clicks, names = [], set()
        for g in goal_option_values(self.goal):
            g_norm = normalize_color(g)
            best = None
            for name, values in product["options"].items():
                if name in names:
                    continue
                for v in values:
                    if v == g:
                        best = (name, v)
                        break
                    if best is None and _fuzzy(normalize_color(v), g_norm) > FUZZ_THRESHOLD:
                        best = (name, v)
                if best is not None and best[1] == g:
                    break
            if best is not None:
                names.add(best[0])
                if chosen.get(best[0]) != best[1]:
                    clicks.append(f"click[{best[1]}]")
        return clicks

    def buying_wins(self, asin: str, chosen: dict[str, str]) -> bool:
        """Whether buying ``asin`` after clicking the goal's options (from ``chosen``) wins: the
        target always does; another product that would win is finished rather than left."""
        if asin == self.goal["asin"]:
            return True
        product = self.shop.by_asin[asin]
        options = dict(chosen)
        for click in self.goal_clicks(asin, chosen):
            name = option_name(product, click[len("click["):-1])
            if name is not None:
                options[name] = click[len("click["):-1]
        return get_reward(product, self.goal, self.shop.prices[asin], options).reward >= SUCCESS_REWARD

    def _to_target(self, hits: list[str], page: int) -> list[str] | None:
        target = self.goal["asin"]
        if target not in hits:
            return None
        want = hits.index(target) // PRODUCT_WINDOW + 1
        moves = [f"click[{NEXT_PAGE}]"] * (want - page) + [f"click[{PREV_PAGE}]"] * (page - want)
        return [*moves, f"click[{target.lower()}]", *self.goal_clicks(target, {}),
                f"click[{END_BUTTON}]"]

    def expert_plan(self) -> list[str]:
        """The expert's commands from the current page to buying the target."""
        p = self.page
        q = self.expert_query()
        fresh = [f"search[{q}]", *(self._to_target(self.shop.search(q), 1) or [])] if q else []
        if p.kind == "search":
            return fresh
        if p.kind == "done":
            return []
        if p.kind in ("item", "sub") and p.asin is not None and self.buying_wins(p.asin, p.options):
            back = [f"click[{PREV_PAGE}]"] if p.kind == "sub" else []
            return [*back, *self.goal_clicks(p.asin, p.options), f"click[{END_BUTTON}]"]
        rest = self._to_target(self.hits(), p.page)
        if rest is None:
            return [f"click[{BACK_TO_SEARCH}]", *fresh] if fresh else []
        back = {"results": [], "item": [f"click[{PREV_PAGE}]"]}.get(p.kind, [f"click[{PREV_PAGE}]"] * 2)
        return [*back, *rest]

    # -- reset / step ----------------------------------------------------------------------
    def reset(self) -> GameState:
        self.page = Page()
        self.info = None
        obs = self.observation()
        self._state = GameState(game=self.ref.name, goal=self.goal["instruction_text"],
                                observation=obs, first_observation=obs,
                                admissible_commands=self.admissible(),
                                expert_actions=self.expert_plan() if self.expert else [],
                                max_steps=self.max_steps)
        return self._state

    @property
    def state(self) -> GameState:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def step(self, command: str) -> GameState:
        st = self.state
        if st.done:
            raise RuntimeError(f"{st.game}: the session is over; call reset() to play it again")
        command = " ".join(str(command).split())
        new = st.model_copy(deep=True)
        new.steps += 1
        new.last_action = command
        low = command.lower()
        if low.startswith(THINK_PREFIX) or low.startswith("think["):
            new.observation = "OK."
        else:
            self._apply(command)
            new.observation = self.observation()
            new.admissible_commands = self.admissible()
            new.expert_actions = self.expert_plan() if self.expert else []
            if self.page.kind == "done":
                new.reward = self.page.reward
                new.won = new.reward >= SUCCESS_REWARD
                new.lost = not new.won
        new.done = new.won or new.lost or new.steps >= self.max_steps
        self._state = new
        return new

    def close(self) -> None:
        pass

    def __enter__(self) -> ShopEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fuzzy(a: str, b: str) -> int:
    from thefuzz import fuzz

    return fuzz.token_set_ratio(a, b)


def shop_ref(path: Path) -> GameRef:
    if not (path.is_file() and path.name.endswith(SUFFIX)):
        raise GameNotFound(f"{path}: no such WebShop session (expected a *{SUFFIX} file)")
    return GameRef(name=path.name[:-len(SUFFIX)], path=path, kind="webshop")


def find_sessions(root: str | Path) -> list[GameRef]:
    """Every WebShop session under ``root``, sorted by name."""
    return sorted((shop_ref(p) for p in Path(root).rglob(f"*{SUFFIX}")), key=lambda r: r.name)


class ShopSessions:
    """The engine of WebShop sessions (``*.shop.json`` files)."""

    kind = "webshop"

    def find(self, root: Path) -> list[GameRef]:
        return find_sessions(root)

    def ref(self, path: Path) -> GameRef | None:
        try:
            return shop_ref(path)
        except GameNotFound:
            return None

    def open(self, ref: GameRef, max_steps: int, expert: bool) -> ShopEnv:
        return ShopEnv(ref, max_steps=max_steps, expert=expert)


register_engine(ShopSessions())
