"""The README's main command, end to end: the scripted agent post-trains the micro model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_blocks import readme_commands


@pytest.mark.slow
def test_scripted_micro_episode_improves(tmp_path, micro_assets):
    """The README's command 2, exactly as written, run in a fresh folder (results/ and workspace/
    land there)."""
    bin_dir = Path(sys.executable).parent  # the venv's autorl-gym
    env = {**os.environ, "COLUMNS": "160", "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                     os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run(readme_commands()[1], shell=True, cwd=tmp_path, capture_output=True,
                          text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "improvement" in proc.stdout
    runs = list((tmp_path / "results").iterdir())
    assert len(runs) == 1
    fb = json.loads((runs[0] / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["submission_id"] == 1
    assert fb["improvement"] == pytest.approx(fb["score"] - fb["baseline"])
    assert fb["improvement"] > 0, fb
    subs = [json.loads(x) for x in (runs[0] / "submissions.jsonl").read_text().splitlines()]
    assert len(subs) == 1 and subs[0]["error"] is None and subs[0]["score"] > subs[0]["baseline"]
    print(f"\nmicro episode: baseline {fb['baseline']:.2f} score {fb['score']:.2f} "
          f"improvement {fb['improvement']:+.2f} in {fb['elapsed_s']:.0f} s")
    ws = next((tmp_path / "workspace").iterdir())
    assert (ws / "output" / "v1" / "model.safetensors").is_file()
    assert Path(ws / "code" / "train_sft.py").is_file()
