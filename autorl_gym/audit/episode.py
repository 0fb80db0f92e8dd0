"""The episode's hooks: its provenance stamp at the start, its audit at the end. Neither may
fail an episode: a failure is logged and written to ``recording_errors.jsonl``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from autorl_gym.audit.provenance import PROVENANCE_FILE, Provenance, read_provenance, stamp
from autorl_gym.audit.verdict import AuditReport
from autorl_gym.io import append_jsonl, atomic_write_json

if TYPE_CHECKING:
    from autorl_gym.episode.core import Episode

log = logging.getLogger(__name__)


def _failed(ep: Episode, what: str, e: Exception) -> None:
    log.warning("%s failed: %s", what, e)
    if ep.recorder is not None:
        append_jsonl(ep.recorder.root / "recording_errors.jsonl",
                     {"time": datetime.now(UTC).isoformat(), "what": what,
                      "error": f"{e.__class__.__name__}: {e}"})


def stamp_episode(ep: Episode) -> Provenance | None:
    """The episode's stamp, written once as provenance.json (a resumed run keeps its own)."""
    assert ep.recorder is not None
    path = ep.recorder.root / PROVENANCE_FILE
    try:
        if path.exists():
            return read_provenance(ep.recorder.root)
        prov = stamp(ep.scenario, ep.grader, ep.config.sandbox)
        atomic_write_json(path, prov.model_dump(mode="json"))
        return prov
    except Exception as e:  # noqa: BLE001 - the stamp never fails an episode
        _failed(ep, "provenance", e)
        return None


def audit_episode(ep: Episode) -> AuditReport | None:
    """Audit the ended episode's workspace, LLM calls and tool calls (audit.json)."""
    from autorl_gym.audit.run import audit, index_for

    if ep.recorder is None:
        return None
    try:
        index = index_for(ep.scenario, ep.grading.assets)
        report = audit(index, ep.recorder.root, ep.workspace.root if ep.workspace else None)
        if report.verdict != "clean":
            ep.recorder.integrity(f"audit.{report.verdict}", "audit", report.reason[:1000],
                                  items=report.items_overlapped[:50],
                                  canaries=report.canaries_found)
        return report
    except Exception as e:  # noqa: BLE001 - an audit failure is recorded, the results stay
        _failed(ep, "audit", e)
        return None
