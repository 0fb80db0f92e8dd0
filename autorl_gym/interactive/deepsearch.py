"""Research questions answered by searching: the ``deepsearch`` engine.

A split folder (or each world folder of a split) holds::

    search.json           the search backend answering search[...] (a SearchSpec)
    questions/<id>.json   one question each: {"id", "question", "answer", "answer_type",
                          "expert": ["search[...]", ..., "answer[...]"]}  (answer, expert optional)
    vocab.json            optional: the names and values of a generated world (a gazetteer)

The policy acts with ``search[query]`` (the observation is the top results) and ends with
``answer[text]``; anything else costs a step and says what is allowed. The episode is won when
the answer matches the gold answer after normalisation (:func:`normalize_answer`: case,
punctuation, articles and spacing ignored); a judge on the host may accept more (see the
DeepSearchQA family). With ``vocab.json`` the admissible commands are ``search[x]`` for every
name seen so far (in the question or a result) and ``answer[x]`` for every name or value seen in
a result; without it there are none and the policy writes its own commands. The expert follows
the question's own chain of searches.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

from pydantic import BaseModel, Field

from autorl_gym.interactive.engines import register_engine
from autorl_gym.interactive.search import (
    SearchBackend,
    SearchError,
    SearchSpec,
    format_results,
    make_search,
)
from autorl_gym.interactive.state import GameNotFound, GameRef, GameState

KIND = "deepsearch"
_CMD_RE = re.compile(r"^\s*(search|answer)\s*\[(.*?)\]?\s*$", re.IGNORECASE | re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_WORD_RE = re.compile(r"[\w'-]+")


def instructions(max_steps: int) -> str:
    return (f"Use search[query] to search the documents and answer[text] to give the final answer; "
            f"at most {max_steps} steps.")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, gold: str | list[str]) -> bool:
    golds = [gold] if isinstance(gold, str) else gold
    a = normalize_answer(answer)
    return bool(a) and any(a == normalize_answer(g) for g in golds if g)


def parse_command(command: str) -> tuple[str, str] | None:
    """``("search", query)`` or ``("answer", text)``, or None for anything else."""
    m = _CMD_RE.match(command.strip().splitlines()[0] if command.strip() else "")
    if not m or not m.group(2).strip():
        return None
    return m.group(1).lower(), " ".join(m.group(2).split())


class Question(BaseModel):
    id: str
    question: str
    answer: str | None = None
    aliases: list[str] = Field(default_factory=list)
    answer_type: str = ""
    category: str = ""
    expert: list[str] = Field(default_factory=list)


class SearchState(GameState):
    queries: list[str] = Field(default_factory=list, description="every search made, in order")
    answer: str | None = Field(None, description="the final answer, once given")


class _Split:
    """One split folder's search backend and vocabulary, loaded once per process."""

    def __init__(self, root: Path):
        spec_path = root / "search.json"
        try:
            self.spec = SearchSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise GameNotFound(f"{spec_path}: not a search configuration: {e}") from e
        self.root = root
        self._backend: SearchBackend | None = None
        vocab = root / "vocab.json"
        self.vocab: list[str] = json.loads(vocab.read_text(encoding="utf-8")) if vocab.is_file() else []
        self._terms = set(self.vocab)
        self._longest = max((len(v.split()) for v in self.vocab), default=0)

    @property
    def backend(self) -> SearchBackend:
        if self._backend is None:
            self._backend = make_search(self.spec, self.root)
        return self._backend

    def seen(self, text: str) -> list[str]:
        """The vocabulary's terms that occur in ``text`` as whole words."""
        words = _WORD_RE.findall(text)
        found = {" ".join(words[i:i + n]) for n in range(1, self._longest + 1)
                 for i in range(len(words) - n + 1)} & self._terms
        return sorted(found)


_SPLITS: dict[Path, _Split] = {}


def split_of(ref: GameRef) -> _Split:
    root = ref.path.parent.parent.resolve()
    if root not in _SPLITS:
        _SPLITS[root] = _Split(root)
    return _SPLITS[root]


def set_backend(root: Path, backend: SearchBackend) -> None:
    """Answer the searches of the split at ``root`` with ``backend`` (the grader's cached one)."""
    root = root.resolve()
    if root not in _SPLITS:
        _SPLITS[root] = _Split(root)
    _SPLITS[root]._backend = backend


def load_question(ref: GameRef) -> Question:
    try:
        return Question.model_validate_json(ref.path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GameNotFound(f"{ref.path}: not a question file: {e}") from e


class SearchEnv:
    """One question: ``reset()``, then ``step("search[...]")`` ... ``step("answer[...]")``."""

    def __init__(self, ref: GameRef, max_steps: int = 6, expert: bool = False):
        self.ref = ref
        self.max_steps = max_steps
        self.expert = expert
        self.split = split_of(ref)
        self.q = load_question(ref)
        self._state: SearchState | None = None
        self._seen = ""
        self._results_text = ""

    def _gold(self) -> list[str]:
        return [g for g in [self.q.answer, *self.q.aliases] if g]

    def _admissible(self) -> list[str]:
        if not self.split.vocab:
            return []
        searches = [f"search[{v}]" for v in self.split.seen(self.q.question + "\n" + self._seen)]
        answers = [f"answer[{v}]" for v in self.split.seen(self._results_text)]
        return sorted(set(searches + answers))

    def _expert(self, st: SearchState) -> list[str]:
        if not self.expert:
            return []
        done = {f"search[{q}]" for q in st.queries}
        return [a for a in self.q.expert if a not in done]

    def reset(self) -> SearchState:
        self._seen = self._results_text = ""
        text = instructions(self.max_steps)
        st = SearchState(game=self.ref.name, goal=self.q.question, observation=text,
                         first_observation=text, admissible_commands=[], max_steps=self.max_steps)
        st.admissible_commands = self._admissible()
        st.expert_actions = self._expert(st)
        self._state = st
        return st

    @property
    def state(self) -> SearchState:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def step(self, command: str) -> SearchState:
        st = self.state
        if st.done:
            raise RuntimeError(f"{st.game}: the question is answered; call reset() to ask it again")
        new = st.model_copy(deep=True)
        new.steps += 1
        new.last_action = " ".join(str(command).split())
        parsed = parse_command(str(command))
        if parsed is None:
            new.observation = f"Invalid action. {instructions(self.max_steps)}"
        elif parsed[0] == "search":
            new.queries.append(parsed[1])
            try:
                results = self.split.backend.search(parsed[1], self.split.spec.top_k)
                new.observation = format_results(results, self.split.spec.snippet_chars)
            except SearchError as e:
                new.observation = f"Search failed: {e}"
            self._seen += "\n" + new.observation
            self._results_text += "\n" + new.observation
        else:
            new.answer = parsed[1]
            new.won = exact_match(parsed[1], self._gold())
            new.lost = not new.won
            new.reward = 1.0 if new.won else 0.0
            new.observation = "Answer recorded."
        new.done = new.answer is not None or new.steps >= self.max_steps
        new.admissible_commands = self._admissible()
        new.expert_actions = self._expert(new)
        self._state = new
        return new

    def close(self) -> None:
        pass


class DeepSearchEngine:
    kind = KIND

    def find(self, root: Path) -> list[GameRef]:
        """The questions of ``root``, or of each of its subfolders that is a split (a generated
        split may hold several worlds, each with its own documents and search)."""
        folders = [root] if (root / "search.json").is_file() else \
            [d for d in sorted(root.iterdir()) if (d / "search.json").is_file()]
        return [GameRef(name=p.stem, path=p, kind=KIND) for d in folders
                for p in sorted((d / "questions").glob("*.json"))]

    def ref(self, path: Path) -> GameRef | None:
        p = Path(path)
        if p.suffix == ".json" and p.parent.name == "questions" and p.is_file() \
                and (p.parent.parent / "search.json").is_file():
            return GameRef(name=p.stem, path=p, kind=KIND)
        return None

    def open(self, ref: GameRef, max_steps: int, expert: bool) -> SearchEnv:
        return SearchEnv(ref, max_steps=max_steps, expert=expert)


register_engine(DeepSearchEngine())
