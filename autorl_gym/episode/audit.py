"""The episode's evidence: its provenance stamp at the start, its contamination audit at the end
(:mod:`autorl_gym.audit`). Neither may fail an episode: a failure is logged and written to
``recording_errors.jsonl``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autorl_gym.audit.provenance import Provenance, read_provenance, stamp
from autorl_gym.audit.run import audit, index_for
from autorl_gym.audit.verdict import AuditReport
from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.durable import append_jsonl, atomic_write_json
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.scenario import Scenario
from autorl_gym.episode.recorder import EpisodeRecorder

log = logging.getLogger(__name__)


def _failed(recorder: EpisodeRecorder, what: str, e: Exception) -> None:
    log.warning("%s failed: %s", what, e)
    append_jsonl(recorder.root / RunFolder.RECORDING_ERRORS,
                 {"time": datetime.now(UTC).isoformat(), "what": what,
                  "error": f"{e.__class__.__name__}: {e}"})


def stamp_episode(recorder: EpisodeRecorder, scenario: Scenario, grader: Any,
                  sandbox: str) -> Provenance | None:
    """The episode's stamp, written once as provenance.json (a resumed run keeps its own)."""
    path = recorder.root / RunFolder.PROVENANCE
    try:
        if path.exists():
            return read_provenance(recorder.root)
        prov = stamp(scenario, grader, sandbox)
        atomic_write_json(path, prov.model_dump(mode="json"))
        return prov
    except Exception as e:  # noqa: BLE001 - the stamp never fails an episode
        _failed(recorder, "provenance", e)
        return None


def audit_episode(recorder: EpisodeRecorder, scenario: Scenario, assets: ScenarioAssets,
                  workspace: Path | None) -> AuditReport | None:
    """Audit the ended episode's workspace, LLM calls and tool calls (audit.json)."""
    try:
        index = index_for(scenario, assets)
        report = audit(index, recorder.root, workspace, spec=scenario.audit)
        if report.verdict != "clean":
            recorder.integrity(f"audit.{report.verdict}", "audit", report.reason[:1000],
                                  items=report.items_overlapped[:50],
                                  canaries=report.canaries_found)
        return report
    except Exception as e:  # noqa: BLE001 - an audit failure is recorded, the results stay
        _failed(recorder, "audit", e)
        return None
