"""Which training method did the agent use? Read from its code history (or, for runs recorded
without one, from the files it wrote): SFT, GRPO, PPO, DPO, or other."""

from __future__ import annotations

import re

from pydantic import BaseModel

from autorl_gym.report.run_data import RunData

# Most specific first: an RL script usually also mentions generic training words.
PATTERNS: dict[str, re.Pattern[str]] = {
    "GRPO": re.compile(r"\bGRPO(?:Trainer|Config)\b|\bgrpo\b|group[ _-]relative", re.I),
    "PPO": re.compile(r"\bPPO(?:Trainer|Config)\b|\bppo\b|\bproximal policy", re.I),
    "DPO": re.compile(r"\bDPO(?:Trainer|Config)\b|\bdpo\b|direct preference", re.I),
    "SFT": re.compile(r"\bSFT(?:Trainer|Config)\b|\bsft\b|\bSeq2SeqTrainer\b|\bTrainer\(|"
                      r"supervised fine|loss\.backward\(\)|DataCollatorForLanguageModeling", re.I),
}
#: files that count as code (notes and plain text do not); files with no suffix count too
CODE_SUFFIXES = (".py", ".sh", ".bash", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".ipynb")


class MethodEvidence(BaseModel):
    method: str
    file: str
    line: str


class TrainingMethod(BaseModel):
    method: str
    """SFT, GRPO, PPO, DPO, other (code but none of these), or none (no code written)"""
    all_found: list[str]
    evidence: list[MethodEvidence]
    source: str


def _added_lines_from_history(history: list[dict[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for commit in history:
        current = ""
        for line in commit["patch"].splitlines():
            if line.startswith("+++ "):
                # paths in the history are relative to code/
                current = "code/" + line[6:] if line.startswith("+++ b/") else line[4:]
            elif line.startswith("+") and not line.startswith("+++"):
                out.append((current, line[1:]))
    return out


def _written_lines(run: RunData) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for s in run.steps:
        call = s.call if isinstance(s.call, dict) else {}
        if call.get("tool") == "write_file" and isinstance(call.get("content"), str):
            out += [(str(call.get("path", "?")), line) for line in call["content"].splitlines()]
        elif call.get("tool") == "run" and isinstance(call.get("command"), str):
            out += [("(run command)", line) for line in call["command"].splitlines()]
    return out


def detect_method(run: RunData) -> TrainingMethod:
    if run.code_history:
        lines, source = _added_lines_from_history(run.code_history), "code history (git log -p)"
        # commands typed straight into `run` (python -c, heredocs) are code too
        lines += [x for x in _written_lines(run) if x[0] == "(run command)"]
    else:
        lines, source = _written_lines(run), "files written (trajectory.jsonl; no code history)"
    code_lines = [(f, t) for f, t in lines if f == "(run command)" or f.endswith(CODE_SUFFIXES)
                  or "." not in f.rsplit("/", 1)[-1]]
    evidence: list[MethodEvidence] = []
    found: list[str] = []
    for method, pat in PATTERNS.items():
        hits = [(f, t.strip()) for f, t in code_lines if pat.search(t)]
        if hits:
            found.append(method)
            evidence += [MethodEvidence(method=method, file=f, line=t[:160]) for f, t in hits[:3]]
    wrote_code = any(f != "(run command)" for f, _ in code_lines)
    method = found[0] if found else ("other" if wrote_code else "none")
    return TrainingMethod(method=method, all_found=found, evidence=evidence, source=source)
