"""A run's integrity record as the report, the leaderboard and the dashboard show it: its
integrity events (what the benchmark refused), its audit verdict (audit.json), its last
verification (verify.json) and its provenance key. A run is *flagged* when its audit says
contaminated or its verification failed (tampered); a flagged run's improvement is left out of
the leaderboard's means unless asked."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.audit.provenance import read_provenance
from autorl_gym.audit.run import read_audit
from autorl_gym.core.integrity import read_events
from autorl_gym.core.run_folder import RunFolder

VERIFY_FILE = RunFolder.VERIFY
_SHOWN = 20


class EventLine(BaseModel):
    kind: str
    source: str
    detail: str


class IntegritySection(BaseModel):
    events: int = 0
    events_by_kind: dict[str, int] = {}
    first_events: list[EventLine] = []
    audit_verdict: str | None = None
    """clean, suspect, contaminated; None when the run was not audited"""
    audit_reason: str | None = None
    audit_items: list[str] = []
    audit_sources: list[str] = []
    verification: str | None = None
    """verified, failed; None when never verified"""
    verification_problems: list[str] = []
    provenance_key: str | None = None

    @property
    def contaminated(self) -> bool:
        return self.audit_verdict == "contaminated"

    @property
    def tampered(self) -> bool:
        return self.verification == "failed"

    @property
    def flagged(self) -> bool:
        return self.contaminated or self.tampered

    @property
    def label(self) -> str:
        """One cell: events and verdicts, e.g. '3 events · contaminated · verified'."""
        parts = [f"{self.events} event{'s' if self.events != 1 else ''}",
                 self.audit_verdict or "not audited"]
        if self.verification:
            parts.append("tampered" if self.tampered else "verified")
        return " · ".join(parts)


def integrity_section(run_dir: Path) -> IntegritySection:
    from autorl_gym.report.verify import Verification

    run_dir = Path(run_dir)
    events = read_events(run_dir)
    out = IntegritySection(
        events=len(events), events_by_kind=dict(Counter(e.kind for e in events)),
        first_events=[EventLine(kind=e.kind, source=e.source, detail=e.detail[:300])
                      for e in events[:_SHOWN]])
    audit = read_audit(run_dir)
    if audit is not None:
        out.audit_verdict, out.audit_reason = audit.verdict, audit.reason
        out.audit_items = audit.items_overlapped[:50]
        out.audit_sources = sorted({h.source for h in audit.hits})[:50]
    try:
        ver = Verification.model_validate_json((run_dir / VERIFY_FILE).read_bytes())
        out.verification = ver.verdict
        out.verification_problems = [f"{c.name}: {c.detail}" for c in ver.problems]
    except (OSError, ValueError):
        pass
    prov = read_provenance(run_dir)
    out.provenance_key = prov.score_key if prov else None
    return out
