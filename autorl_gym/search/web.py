"""The ``web`` search backend: a web search API called from the host, its key read from the host's
environment (``search.api_key_env``), never visible to the sandbox. Providers:

- ``serper``: ``POST https://google.serper.dev/search`` with ``X-API-KEY`` (Google results);
- ``brave``: ``GET https://api.search.brave.com/res/v1/web/search`` with ``X-Subscription-Token``.

Results are organic hits (title, snippet, link). Wrap it in a cache (``search.cache_dir``; the
grader always does) so that a re-grade sees the same pages and costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autorl_gym.interactive.search import (
    SearchError,
    SearchResult,
    SearchSpec,
    register_search_backend,
)

ENDPOINTS = {"serper": "https://google.serper.dev/search",
             "brave": "https://api.search.brave.com/res/v1/web/search"}


def _serper(client: Any, url: str, key: str, query: str, k: int) -> list[dict[str, str]]:
    resp = client.post(url, json={"q": query, "num": k},
                       headers={"X-API-KEY": key, "Content-Type": "application/json"})
    resp.raise_for_status()
    return [{"title": r.get("title", ""), "text": r.get("snippet", ""), "url": r.get("link", "")}
            for r in resp.json().get("organic", [])]


def _brave(client: Any, url: str, key: str, query: str, k: int) -> list[dict[str, str]]:
    resp = client.get(url, params={"q": query, "count": k},
                      headers={"X-Subscription-Token": key, "Accept": "application/json"})
    resp.raise_for_status()
    return [{"title": r.get("title", ""), "text": r.get("description", ""), "url": r.get("url", "")}
            for r in resp.json().get("web", {}).get("results", [])]


PROVIDERS = {"serper": _serper, "brave": _brave}


class WebSearch:
    name = "web"

    def __init__(self, spec: SearchSpec):
        if spec.provider not in PROVIDERS:
            raise SearchError(f"unknown web search provider {spec.provider!r}; "
                              f"choose from {', '.join(PROVIDERS)}")
        self.spec = spec
        self.url = spec.endpoint or ENDPOINTS[spec.provider]
        self.calls = 0
        self._client: Any = None

    def identity(self) -> str:
        return f"web:{self.spec.provider}:{self.url}"

    def search(self, query: str, k: int) -> list[SearchResult]:
        import httpx

        key = os.environ.get(self.spec.api_key_env)
        if not key:
            raise SearchError(f"web search needs its API key in ${self.spec.api_key_env} on the host")
        if self._client is None:
            self._client = httpx.Client(timeout=self.spec.timeout_s)
        self.calls += 1
        try:
            hits = PROVIDERS[self.spec.provider](self._client, self.url, key, query, k)
        except httpx.HTTPStatusError as e:
            raise SearchError(f"{self.spec.provider} answered {e.response.status_code}: "
                              f"{e.response.text[:200]}") from e
        except (httpx.HTTPError, ValueError) as e:
            raise SearchError(f"{self.spec.provider} search failed: {e.__class__.__name__}: {e}") from e
        return [SearchResult(doc_id=h["url"] or f"{i}", title=h["title"], text=h["text"], url=h["url"])
                for i, h in enumerate(hits[:k])]


@register_search_backend("web")
def _web(spec: SearchSpec, base: Path | None) -> WebSearch:
    return WebSearch(spec)
