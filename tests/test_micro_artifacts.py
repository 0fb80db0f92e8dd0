"""The shipped micro assets: the published sha256 of every file, refusals of a damaged file (in
the cache or in the package), and the same baseline from two fresh caches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autorl_gym.core.durable import file_digest
from autorl_gym.core.family import resolve_assets
from autorl_gym.core.scenario import ScenarioError
from autorl_gym.grading.grader import Grader
from autorl_gym.micro.build import ensure_micro_assets
from autorl_gym.micro.data import MICRO_VERSION
from autorl_gym.micro.multistep import MULTISTEP_VERSION
from autorl_gym.micro.shipped import (
    ARTIFACTS_DIR,
    BUILDERS,
    ArtifactMismatch,
    ensure_installed,
    pack,
    read_manifest,
    reinstall,
    verify_files,
)
from autorl_gym.micro.textworld import TEXTWORLD_VERSION
from autorl_gym.scenarios.catalog import get_scenario


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_shipped_file_is_published_with_its_sha256() -> None:
    manifest = read_manifest()
    assert {"arith-v1", "textworld-v3"} <= set(manifest.artifacts)
    assert manifest.artifacts["arith-v1"].version == MICRO_VERSION
    assert manifest.artifacts["textworld-v3"].version == TEXTWORLD_VERSION
    shipped = {str(p.relative_to(ARTIFACTS_DIR)) for p in ARTIFACTS_DIR.rglob("*") if p.is_file()}
    published = {"artifacts.json"} | {f"{k}/{rel}" for k, e in manifest.artifacts.items()
                                      for rel in e.files}
    assert shipped == published  # no unpublished file, no published file missing
    for key, entry in manifest.artifacts.items():
        assert entry.name in BUILDERS, f"{key}: no builder registered for the next version"
        verify_files(ARTIFACTS_DIR / key, entry.files, "")
        plain = {rel: sha for rel, sha in entry.files.items() if not rel.endswith(".tar.xz")}
        assert plain.items() <= entry.content.items()
        # a model, or a data-only asset (arith_multistep: generated splits for micro:arith's model)
        assert "model/model.safetensors" in entry.content or set(entry.content) == set(entry.generated)


def test_a_damaged_installed_model_is_refused_with_a_clear_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path))
    assets = ensure_micro_assets(progress=False)
    assert assets.root == tmp_path / "micro" / f"arith-v{MICRO_VERSION}"
    weights = assets.model_dir / "model.safetensors"
    expected = read_manifest().artifacts["arith-v1"].content["model/model.safetensors"]
    assert file_digest(weights) == expected
    _flip_last_byte(weights)
    actual = file_digest(weights)
    scenario = get_scenario("AutoRL-Micro-Arith-v0")
    with pytest.raises(ArtifactMismatch) as err:
        resolve_assets(scenario, progress=False)   # what the env, the CLI and the server call
    assert isinstance(err.value, ScenarioError)   # every command reports it as one clear message
    msg = str(err.value)
    assert str(weights) in msg and expected in msg and actual in msg
    assert "autorl-gym micro install arith --force" in msg
    # the fix it names works
    reinstall("arith", MICRO_VERSION)
    assert file_digest(weights) == expected
    assert resolve_assets(scenario, progress=False).base_model_dir == assets.model_dir


def test_a_damaged_package_file_or_unreproduced_data_is_refused(tmp_path: Path) -> None:
    pkg = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS_DIR / "arith-v1", pkg / "arith-v1")
    manifest = json.loads((ARTIFACTS_DIR / "artifacts.json").read_text())
    manifest["artifacts"] = {"arith-v1": manifest["artifacts"]["arith-v1"]}
    (pkg / "artifacts.json").write_text(json.dumps(manifest))
    tokenizer = pkg / "arith-v1" / "model" / "tokenizer.json"
    _flip_last_byte(tokenizer)
    with pytest.raises(ArtifactMismatch, match="reinstall autorl-gym") as err:
        ensure_installed("arith", MICRO_VERSION, cache_dir=tmp_path / "c1", artifacts_dir=pkg)
    assert err.value.path == tokenizer and err.value.actual == file_digest(tokenizer)
    assert not (tmp_path / "c1" / "micro" / "arith-v1").exists()   # nothing half-installed
    shutil.copyfile(ARTIFACTS_DIR / "arith-v1" / "model" / "tokenizer.json", tokenizer)
    # generated data that does not come out as published is refused too
    manifest["artifacts"]["arith-v1"]["content"]["hidden/test.jsonl"] = "0" * 64
    (pkg / "artifacts.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactMismatch, match="generated here from fixed seeds"):
        ensure_installed("arith", MICRO_VERSION, cache_dir=tmp_path / "c2", artifacts_dir=pkg)


@pytest.mark.parametrize("name", ["arith", "arith_multistep"])
def test_packing_an_install_reproduces_the_published_entry(name: str, tmp_path: Path) -> None:
    version = MICRO_VERSION if name == "arith" else MULTISTEP_VERSION
    root = ensure_installed(name, version, cache_dir=tmp_path / "cache")
    entry = pack(name, version, root, tmp_path / "out", BUILDERS[name])
    assert entry == read_manifest().artifacts[f"{name}-v{version}"]


def _baseline(scenario_id: str, cache: Path, monkeypatch: pytest.MonkeyPatch, limit: int):  # noqa: ANN202
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(cache))
    sc = get_scenario(scenario_id)
    sc = sc.model_copy(update={"grader": sc.grader.model_copy(update={"isolation": "inline"})})
    grader = Grader(sc, resolve_assets(sc, progress=False))
    return grader, grader.baseline("test", limit=limit)


@pytest.mark.parametrize("scenario_id", ["AutoRL-Micro-Arith-v0", "AutoRL-Micro-Arith-Multistep-v0"])
def test_two_fresh_caches_give_identical_baselines(scenario_id: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """(The multi-step scenario shares the arith-v1 model; its data is its own asset.)"""
    ga, a = _baseline(scenario_id, tmp_path / "a", monkeypatch, 24)
    gb, b = _baseline(scenario_id, tmp_path / "b", monkeypatch, 24)
    assert ga.assets.base_model_dir != gb.assets.base_model_dir
    assert ga.base_hash == gb.base_hash and a.model_hash == b.model_hash == ga.base_hash
    assert file_digest(ga.assets.base_model_dir / "model.safetensors") == \
        read_manifest().artifacts["arith-v1"].content["model/model.safetensors"]
    assert (a.n, a.score, a.correct) == (b.n, b.score, b.correct) and a.n == 24
    assert [(r.answer, r.completion) for r in a.items] == [(r.answer, r.completion) for r in b.items]


def test_two_fresh_caches_install_the_same_textworld_games_and_policy(tmp_path: Path) -> None:
    """(Playing a game costs ~15 s of CPU: the arithmetic baseline above covers the grading.)"""
    roots = [ensure_installed("textworld", TEXTWORLD_VERSION, cache_dir=tmp_path / c) for c in "ab"]
    trees = [{str(p.relative_to(r)): file_digest(p) for p in r.rglob("*")
              if p.is_file() and p.name != ".installed"} for r in roots]
    assert trees[0] == trees[1] == read_manifest().artifacts["textworld-v3"].content
    assert len([k for k in trees[0] if k.endswith(".z8")]) == 272


def test_the_micro_cli_verifies_installs_and_packs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from autorl_gym.cli.main import app

    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    res = runner.invoke(app, ["micro", "install", "arith"])
    assert res.exit_code == 0 and "arith-v1: installed" in res.output, res.output
    res = runner.invoke(app, ["micro", "verify", "arith"])
    assert res.exit_code == 0 and "arith-v1: ok" in res.output, res.output
    _flip_last_byte(tmp_path / "cache" / "micro" / "arith-v1" / "model" / "config.json")
    res = runner.invoke(app, ["micro", "verify", "arith"])
    assert res.exit_code == 2 and "does not match its published hash" in res.output, res.output
    res = runner.invoke(app, ["micro", "install", "arith", "--force"])
    assert res.exit_code == 0, res.output
    # packing a finished build prints the entry to publish; publishing it again changes nothing
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(ARTIFACTS_DIR / "artifacts.json", out / "artifacts.json")
    res = runner.invoke(app, ["micro", "build", "arith", "--out", str(out), "--publish",
                              "--from", str(tmp_path / "cache" / "micro" / "arith-v1")])
    assert res.exit_code == 0, res.output
    assert read_manifest(out) == read_manifest()
    assert (out / "arith-v1" / "model" / "model.safetensors").is_file()
    res = runner.invoke(app, ["micro", "build", "nosuch", "--out", str(out)])
    assert res.exit_code == 2 and "unknown micro asset 'nosuch'" in res.output
