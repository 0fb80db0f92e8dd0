"""Auditing a run: the hidden splits' patterns (built once per scenario and process) against
every source of the run (:mod:`autorl_gym.audit.sources`), written as ``audit.json``."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from autorl_gym.audit import sources as src
from autorl_gym.audit.hidden import HiddenIndex, build_index
from autorl_gym.audit.matcher import Pattern, Stream
from autorl_gym.audit.normalise import COVERAGE
from autorl_gym.audit.review import review
from autorl_gym.audit.verdict import AUDIT_FILE, AuditHit, AuditReport, chance_test, decide
from autorl_gym.core.durable import atomic_write_json
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.scenario import AuditSpec

_INDEX: dict[tuple[str, tuple[tuple[str, str], ...]], HiddenIndex] = {}
MAX_HITS = 2000  # hits kept in audit.json; the verdict counts them all


class AuditError(ValueError):
    """A results folder that cannot be audited (the message says why)."""


def index_for(scenario: Any, assets: Any) -> HiddenIndex:
    key = (scenario.id, tuple(sorted((k, str(v)) for k, v in assets.hidden_splits.items())))
    if key not in _INDEX:
        _INDEX[key] = build_index(scenario, assets)
    return _INDEX[key]


def scan(index: HiddenIndex, sources: Any) -> tuple[list[AuditHit], dict[str, int]]:
    """Every source against the index: one hit per (source, item or canary), an n-gram hit with
    the share of the item's segment it covers (counted at :data:`COVERAGE` or more)."""
    hits: list[AuditHit] = []
    counts: dict[str, int] = {}
    for source in sources:
        counts[source.kind] = counts.get(source.kind, 0) + 1
        stream = Stream(index.patterns)
        for piece in source.pieces():
            if isinstance(piece, bytes):
                stream.feed_bytes(piece)
            else:
                stream.feed(piece)
        hits += _hits(index, source.name, stream.close())
    return hits, counts


def _hits(index: HiddenIndex, source: str, found: dict[Pattern, tuple[str, int]]) -> list[AuditHit]:
    grouped: dict[tuple[str, str], list[tuple[Pattern, str, int]]] = defaultdict(list)
    for p, (text, n) in found.items():
        grouped[(p.kind, p.key)].append((p, text, n))
    out = []
    for (kind, key), found_here in sorted(grouped.items()):
        occurrences = sum(n for _, _, n in found_here)
        if kind != "ngram":
            out.append(AuditHit(source=source, kind=kind, item=key,  # type: ignore[arg-type]
                                text=found_here[0][1], occurrences=occurrences))
            continue
        by_segment: dict[int, set[int]] = defaultdict(set)
        for p, _, _ in found_here:
            by_segment[p.segment].add(p.window)
        best_seg, cov = max(((seg, index.coverage(key, seg, w)) for seg, w in by_segment.items()),
                            key=lambda sc: sc[1])
        text = " ... ".join(t for p, t, _ in sorted(found_here, key=lambda f: f[0].window)
                            if p.segment == best_seg)
        out.append(AuditHit(source=source, kind="ngram", item=key, text=text[:2000],
                            occurrences=occurrences, coverage=round(cov, 3),
                            counted=cov >= COVERAGE))
    return out


def _sources(results_dir: Path, workspace: Path | None, budget: src.Budget,
             skipped: list[src.Unscanned], max_file: int) -> Any:
    if workspace is not None and workspace.is_dir():
        yield from src.workspace_sources(workspace, budget, skipped, max_file)
    elif workspace is not None:
        skipped.append(src.Unscanned(f"workspace:{workspace}", "the workspace is gone"))
    yield from src.llm_call_sources(results_dir, skipped)
    yield from src.trajectory_sources(results_dir, skipped)


def audit(index: HiddenIndex, results_dir: Path, workspace: Path | None,
          max_file: int = src.MAX_FILE_BYTES, max_total: int = src.MAX_TOTAL_BYTES,
          spec: AuditSpec | None = None) -> AuditReport:
    """Audit one run's sources against ``index`` (and, where ``spec`` names a reviewing judge,
    have it review them); writes and returns ``audit.json``."""
    t0 = time.monotonic()
    skipped: list[src.Unscanned] = []
    budget = src.Budget(max_total)
    found, counts = scan(index, _sources(results_dir, workspace, budget, skipped, max_file))
    unread = [f"{u.name}: {u.why}" for u in skipped if u.escalates]
    chance = chance_test(found, len(index.items), len(index.decoys))
    hits = [h for h in found if h.item not in index.decoys]
    verdict, reason, items, answers, cans = decide(hits, len(index.items), unread, chance)
    llm_review = None
    if spec is not None and spec.llm_review is not None:
        llm_review = review(index, spec, _sources(results_dir, workspace, src.Budget(max_total), [],
                                                  max_file))
        if llm_review.items_named and verdict == "clean":
            named = ", ".join(llm_review.items_named[:10])
            verdict, reason = "suspect", (f"the LLM review ({llm_review.judge.get('model', '?')}) "
                                          f"names {len(llm_review.items_named)} hidden item(s) as "
                                          f"reworded in what the agent could train on: {named}")
    report = AuditReport(
        scenario=index.scenario, verdict=verdict, reason=reason,
        tolerance_items=_tol(index), items_overlapped=items, answers_found=answers,
        canaries_found=cans, hits=hits[:MAX_HITS], hidden_items=index.counts(), chance=chance,
        split_digests=index.split_digests, patterns_dropped_as_public=index.dropped_public,
        items_too_short=len(index.short_items), sources=counts, bytes_read=budget.read,
        unscanned=[f"{u.name}: {u.why}" for u in skipped], unread=unread, review=llm_review,
        index_s=round(index.build_s, 3),
        scan_s=round(time.monotonic() - t0, 3))
    atomic_write_json(results_dir / AUDIT_FILE, report.model_dump(mode="json"))
    return report


def _tol(index: HiddenIndex) -> int:
    from autorl_gym.audit.verdict import tolerance

    return tolerance(len(index.items))


def audit_run(results_dir: Path, workspace: Path | None = None) -> AuditReport:
    """``autorl-gym audit RUN_DIR``: the run's scenario and workspace from its run.json."""
    from autorl_gym.core.family import present_assets, resolve_assets
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.scenarios.catalog import get_scenario

    results_dir = Path(results_dir)
    try:
        run = json.loads((results_dir / RunFolder.RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AuditError(f"{results_dir}: no readable run.json ({e})") from e
    try:
        scenario = get_scenario(str(run["scenario"]))
        assets = present_assets(scenario) or resolve_assets(scenario, progress=False)
    except (KeyError, ScenarioError) as e:
        raise AuditError(f"{results_dir}: the run's scenario cannot be loaded ({e})") from e
    if workspace is None and run.get("workspace"):
        workspace = Path(run["workspace"])
    return audit(index_for(scenario, assets), results_dir, workspace, spec=scenario.audit)


def read_audit(results_dir: Path) -> AuditReport | None:
    """The run's audit.json, or None (not audited, or unreadable)."""
    try:
        return AuditReport.model_validate_json((Path(results_dir) / AUDIT_FILE).read_bytes())
    except (OSError, ValueError):
        return None
