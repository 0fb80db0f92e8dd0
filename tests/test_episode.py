"""The README's main command, end to end: the scripted agent post-trains the micro model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ReadmeEpisode


@pytest.mark.slow
def test_scripted_micro_episode_improves(readme_episode: ReadmeEpisode):
    """The README's command 2, exactly as written, run in a fresh folder (results/ and workspace/
    land there)."""
    proc, folder = readme_episode.proc, readme_episode.folder
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "improvement" in proc.stdout
    runs = list((folder / "results").iterdir())
    assert len(runs) == 1
    fb = readme_episode.feedback()
    assert fb["status"] == "finished" and fb["submission_id"] == 1
    assert fb["improvement"] == pytest.approx(fb["score"] - fb["baseline"])
    assert fb["improvement"] > 0, fb
    subs = [json.loads(x) for x in (runs[0] / "submissions.jsonl").read_text().splitlines()]
    assert len(subs) == 1 and subs[0]["error"] is None and subs[0]["score"] > subs[0]["baseline"]
    print(f"\nmicro episode: baseline {fb['baseline']:.2f} score {fb['score']:.2f} "
          f"improvement {fb['improvement']:+.2f} in {fb['elapsed_s']:.0f} s")
    ws = next((folder / "workspace").iterdir())
    assert (ws / "output" / "v1" / "model.safetensors").is_file()
    assert Path(ws / "code" / "train_sft.py").is_file()
