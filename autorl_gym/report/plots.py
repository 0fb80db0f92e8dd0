"""The report's plots, as PNG bytes (matplotlib, Agg backend): score per submission against
time with the baseline drawn, a timeline of tool calls by kind, and, for runs whose agent called
its model through the LLM gateway, the tokens (and cost) used over time."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from autorl_gym.report.llm import TokenPoint  # noqa: E402
from autorl_gym.report.run_data import RunData  # noqa: E402

TOOL_ORDER = ["write_file", "read_file", "list_files", "run", "submit", "finish", "invalid"]
TOOL_COLORS = {"write_file": "#4c72b0", "read_file": "#8c8c8c", "list_files": "#b0b0b0",
               "run": "#55a868", "submit": "#dd8452", "finish": "#8172b3", "invalid": "#c44e52"}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def score_plot(run: RunData) -> bytes:
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    subs = run.submissions
    valid = [s for s in subs if s.valid and not s.flagged_base_copy]
    copies = [s for s in subs if s.valid and s.flagged_base_copy]
    bad = [s for s in subs if not s.valid]
    split = subs[0].split if subs else (run.feedback.feedback_split if run.feedback else "dev")
    base = subs[0].baseline if subs else (run.feedback.feedback_baseline if run.feedback else None)
    if valid:
        ax.plot([s.elapsed_s for s in valid], [s.score for s in valid], "o-", color="#4c72b0",
                label=f"submission score ({split})")
        for s in valid:
            ax.annotate(str(s.id), (s.elapsed_s, s.score), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)
    if copies:
        ax.plot([s.elapsed_s for s in copies], [s.score for s in copies], "s", color="#8c8c8c",
                label="copy of the base model")
    if base is not None:
        ax.axhline(base, color="#c44e52", ls="--", lw=1, label=f"baseline ({split}) {base:.2f}")
        if bad:
            ax.plot([s.elapsed_s for s in bad], [base] * len(bad), "x", color="#c44e52", ms=9,
                    label="refused submission")
    fb = run.feedback
    if fb is not None:
        ax.plot([fb.elapsed_s], [fb.score], "*", color="#55a868", ms=14,
                label=f"final test score {fb.score:.2f}")
        ax.plot([fb.elapsed_s], [fb.baseline], "_", color="#c44e52", ms=16, mew=2,
                label=f"test baseline {fb.baseline:.2f}")
    budget = run.run.get("budget", {}).get("seconds") if isinstance(run.run.get("budget"), dict) else None
    if budget:
        ax.axvline(budget, color="#999999", ls=":", lw=1)
    if not subs and fb is None:
        ax.text(0.5, 0.5, "no submission", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since reset")
    ax.set_ylabel(f"score ({fb.metric if fb else 'accuracy'})")
    ax.set_title("score per submission")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def timeline_plot(run: RunData) -> bytes:
    kinds = [k for k in TOOL_ORDER if any(s.tool == k for s in run.steps)] or ["run"]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.42 * len(kinds)), layout="constrained")
    for row, kind in enumerate(kinds):
        steps = [s for s in run.steps if s.tool == kind]
        ok = [(max(0.0, s.elapsed_s - s.duration_s), max(s.duration_s, 0.0)) for s in steps
              if not (kind == "run" and s.exit_code != 0)]
        failed = [(max(0.0, s.elapsed_s - s.duration_s), max(s.duration_s, 0.0)) for s in steps
                  if kind == "run" and s.exit_code != 0]
        span = max((s.elapsed_s for s in run.steps), default=1.0) or 1.0
        # instantaneous calls still get a visible sliver
        ok = [(a, max(w, span / 400)) for a, w in ok]
        failed = [(a, max(w, span / 400)) for a, w in failed]
        ax.broken_barh(ok, (row - 0.35, 0.7), facecolors=TOOL_COLORS[kind])
        if failed:
            ax.broken_barh(failed, (row - 0.35, 0.7), facecolors="#c44e52", edgecolor="black", lw=0.5)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since reset (red: run that failed)")
    ax.set_title("tool calls")
    ax.grid(axis="x", alpha=0.3)
    if not run.steps:
        ax.text(0.5, 0.5, "no step recorded", transform=ax.transAxes, ha="center", va="center")
    return _png(fig)


def tokens_plot(points: list[TokenPoint]) -> bytes:
    """Cumulative tokens at the end of each LLM call; the cost on a second axis where priced."""
    fig, ax = plt.subplots(figsize=(7.5, 3.0), layout="constrained")
    xs = [0.0] + [p.elapsed_s for p in points]
    ax.step(xs, [0] + [p.tokens for p in points], where="post", color="#4c72b0",
            label="tokens (input + output)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since reset")
    ax.set_ylabel("tokens so far")
    ax.set_title(f"LLM usage: {len(points)} calls")
    ax.grid(alpha=0.3)
    priced = [(p.elapsed_s, p.cost_usd) for p in points if p.cost_usd is not None]
    if priced:
        cost_ax = ax.twinx()
        cost_ax.step([0.0] + [x for x, _ in priced], [0.0] + [c for _, c in priced], where="post",
                     color="#dd8452", label="cost (USD)")
        cost_ax.set_ylabel("USD so far")
        cost_ax.set_ylim(bottom=0)
        handles = ax.get_legend_handles_labels()[0] + cost_ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=7, loc="upper left")
    else:
        ax.legend(fontsize=7, loc="upper left")
    return _png(fig)
