"""Search backends behind one interface, registered by name: what ``search[query]`` runs.

A backend is anything with ``search(query, k) -> list[SearchResult]``. Built in here (stdlib,
pydantic and ``bm25s`` only, so it works inside the sandbox too):

- ``bm25``: a local BM25 index (``bm25s``) over a folder of documents: ``*.txt`` / ``*.md`` files
  (the first line is the title) and ``*.jsonl`` files (one ``{"id", "title", "text"}`` a line);
- ``remote``: the host's search, reached from inside the sandbox through the episode's unix-socket
  bridge (``$AUTORL_SEARCH_URL``); the host answers with its own backend and records the query.

The host registers ``web`` (a web search API, its key read from the host's environment;
:mod:`autorl_gym.search.web`). :func:`make_search` wraps any backend with ``cache_dir`` set in a
:class:`CachedSearch`: every (backend, query, k) is answered from disk once it has been asked, so
a re-grade sees the same pages and costs nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.interactive.registry import Registry

SEARCH_URL_ENV = "AUTORL_SEARCH_URL"


class SearchError(RuntimeError):
    """A search could not be answered (backend down, bad configuration); the message says why."""


class SearchResult(BaseModel):
    doc_id: str
    title: str = ""
    text: str
    url: str = ""
    score: float = 0.0


class SearchSpec(BaseModel):
    """Which backend answers ``search[...]`` and how (one split folder's ``search.json``, or the
    scenario's ``search:`` section)."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("bm25", description="a registered search backend: bm25, web, remote")
    documents: str | None = Field(None, description="bm25: the folder of documents (relative "
                                  "paths are from the split folder)")
    top_k: int = Field(3, gt=0, le=20, description="results shown per search")
    snippet_chars: int = Field(300, gt=0, description="each result's text is cut to this")
    cache_dir: str | None = Field(None, description="answers cached per query here (host side)")
    provider: str = Field("serper", description="web: the search API (serper, brave)")
    api_key_env: str = Field("SERPER_API_KEY", description="web: the host variable holding the key")
    endpoint: str | None = Field(None, description="web: the API's URL (default: the provider's)")
    timeout_s: float = Field(20.0, gt=0)
    url: str | None = Field(None, description=f"remote: the bridge's URL (default ${SEARCH_URL_ENV})")


class SearchBackend(Protocol):
    name: str
    calls: int  # searches that reached the backend itself (a cache hit is not one)

    def search(self, query: str, k: int) -> list[SearchResult]: ...

    def identity(self) -> str:
        """What the cache keys answers by (the backend and the data it searches)."""


Factory = Callable[[SearchSpec, Path | None], SearchBackend]
#: the search backends: this module's (bm25, remote), then the host-side ones, which live in
#: ``autorl_gym.search.<name>`` (not in the sandbox) and are imported when named
SEARCH_BACKENDS: Registry[Factory] = Registry("search backend", unknown=SearchError)


def register_search_backend(name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        SEARCH_BACKENDS.add(name, factory, owner=f"{factory.__module__}.{factory.__qualname__}")
        return factory
    return deco


def search_backends() -> list[str]:
    return SEARCH_BACKENDS.names()


def _factory(name: str) -> Factory:
    if name not in SEARCH_BACKENDS.registered():
        try:  # host-side backends live in autorl_gym.search.<name> (not in the sandbox)
            importlib.import_module(f"autorl_gym.search.{name}")
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("autorl_gym.search"):
                raise
    try:
        return SEARCH_BACKENDS.get(name)
    except SearchError as e:
        hint = (f"; inside the sandbox the host's {name!r} search is reached with backend 'remote'"
                if name == "web" else "")
        raise SearchError(f"{e}{hint}") from None


def make_search(spec: SearchSpec, base: Path | None = None) -> SearchBackend:
    """The backend ``spec`` names (relative paths from ``base``), cached on disk when
    ``spec.cache_dir`` is set."""
    backend = _factory(spec.backend)(spec, base)
    if spec.cache_dir:
        cache = Path(spec.cache_dir)
        if not cache.is_absolute() and base is not None:
            cache = base / cache
        return CachedSearch(backend, cache)
    return backend


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or base is None else base / p


# --------------------------------------------------------------------------- bm25


def read_documents(folder: Path) -> list[SearchResult]:
    """The documents of a folder, sorted by id (``*.txt``, ``*.md``, ``*.jsonl``)."""
    if not folder.is_dir():
        raise SearchError(f"{folder}: no such folder of documents")
    docs: list[SearchResult] = []
    for f in sorted(folder.rglob("*")):
        if f.suffix in (".txt", ".md") and f.is_file():
            lines = [ln for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
            title = lines[0].lstrip("# ").strip() if lines else f.stem
            body = lines[1:] if len(lines) > 1 else lines
            docs.append(SearchResult(doc_id=str(f.relative_to(folder).with_suffix("")), title=title,
                                     text=" ".join(" ".join(body).split())))
        elif f.suffix == ".jsonl" and f.is_file():
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    docs.append(SearchResult(doc_id=str(row.get("id", f"{f.stem}:{n}")),
                                             title=str(row.get("title", "")), text=str(row["text"]),
                                             url=str(row.get("url", ""))))
                except (ValueError, KeyError, TypeError) as e:
                    raise SearchError(f"{f}:{n}: not a document line ({{'id', 'title', 'text'}}): "
                                      f"{e}") from e
    if not docs:
        raise SearchError(f"{folder}: no documents (*.txt, *.md or *.jsonl)")
    return docs


class BM25Search:
    """BM25 (``bm25s``, Lucene's variant) over a folder of documents, title and text indexed."""

    name = "bm25"

    def __init__(self, folder: Path):
        import bm25s

        self.folder = folder
        self.docs = read_documents(folder)
        self.calls = 0
        self._bm25s = bm25s
        corpus = [f"{d.title} {d.text}" for d in self.docs]
        self._index = bm25s.BM25()
        self._index.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False),
                          show_progress=False)
        h = hashlib.sha256()
        for d in self.docs:
            h.update(f"{d.doc_id}\0{d.title}\0{d.text}\n".encode())
        self._digest = h.hexdigest()[:16]
        self._lock = threading.Lock()

    def identity(self) -> str:
        return f"bm25:{self._digest}"

    def search(self, query: str, k: int) -> list[SearchResult]:
        self.calls += 1
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = min(k, len(self.docs))
        with self._lock:
            ids, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=0)
        return [self.docs[int(i)].model_copy(update={"score": float(s)})
                for i, s in zip(ids[0], scores[0], strict=True) if float(s) > 0]


_BM25_CACHE: dict[Path, BM25Search] = {}


@register_search_backend("bm25")
def _bm25(spec: SearchSpec, base: Path | None) -> BM25Search:
    if not spec.documents:
        raise SearchError("search backend 'bm25' needs 'documents' (a folder of documents)")
    folder = _resolve(spec.documents, base).resolve()
    if folder not in _BM25_CACHE:  # one index per folder and process
        _BM25_CACHE[folder] = BM25Search(folder)
    return _BM25_CACHE[folder]


# --------------------------------------------------------------------------- remote (bridge)


class RemoteSearch:
    """The host's search through the sandbox's bridge: ``POST {url}/search {"query", "k"}``."""

    name = "remote"

    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.calls = 0

    def identity(self) -> str:
        return f"remote:{self.url}"

    def search(self, query: str, k: int) -> list[SearchResult]:
        self.calls += 1
        body = json.dumps({"query": query, "k": k}).encode()
        req = urllib.request.Request(f"{self.url}/search", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                data = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise SearchError(f"the host's search answered {e.code}: "
                              f"{e.read().decode('utf-8', 'replace')[:300]}") from e
        except (OSError, ValueError) as e:
            raise SearchError(f"the host's search at {self.url} could not be reached: {e}") from e
        return [SearchResult.model_validate(r) for r in data.get("results", [])]


@register_search_backend("remote")
def _remote(spec: SearchSpec, base: Path | None) -> RemoteSearch:
    url = spec.url or os.environ.get(SEARCH_URL_ENV)
    if not url:
        raise SearchError(f"search backend 'remote' needs a url (or ${SEARCH_URL_ENV}, set in the "
                          "sandbox of an episode whose search runs on the host)")
    return RemoteSearch(url, spec.timeout_s)


# --------------------------------------------------------------------------- cache


class CachedSearch:
    """Answers each (backend, query, k) from ``cache_dir`` once it has been asked (JSON files
    written atomically, so concurrent graders share the cache safely)."""

    def __init__(self, inner: SearchBackend, cache_dir: Path):
        self.inner = inner
        self.name = inner.name
        self.cache_dir = cache_dir
        self.hits = 0
        self.misses = 0

    @property
    def calls(self) -> int:
        return self.inner.calls

    def identity(self) -> str:
        return self.inner.identity()

    def _path(self, query: str, k: int) -> Path:
        key = json.dumps([self.inner.identity(), " ".join(query.split()), k])
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def search(self, query: str, k: int) -> list[SearchResult]:
        path = self._path(query, k)
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.hits += 1
                return [SearchResult.model_validate(r) for r in data["results"]]
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is asked again
        results = self.inner.search(query, k)
        self.misses += 1
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        record = {"backend": self.inner.identity(), "query": query, "k": k,
                  "results": [r.model_dump() for r in results]}
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".q.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)
        return results


def format_results(results: list[SearchResult], snippet_chars: int) -> str:
    """What the policy reads after ``search[...]``: numbered results, each cut to its snippet."""
    if not results:
        return "No results."
    lines = []
    for i, r in enumerate(results, 1):
        text = r.text if len(r.text) <= snippet_chars else r.text[:snippet_chars].rstrip() + "..."
        head = f"[{i}] {r.title}" if r.title and not text.startswith(r.title) else f"[{i}]"
        lines.append(f"{head} {text}".strip())
    return "\n".join(lines)
