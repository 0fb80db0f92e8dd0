"""HumanEval's data: loading (errors name path and line), the split rule, the materialized splits
(visible train only in the mounted folder), and all 164 canonical solutions through the
sandboxed executor. The real file comes from ``$AUTORL_GYM_DATA_DIR/humaneval/``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import shared_data, skip_or_fail_without_bwrap

from autorl_gym.core.sandbox import SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox import make_sandbox
from autorl_gym.tasks.humaneval.data import (
    DATA_DIR_ENV,
    HumanEvalProblem,
    ensure_humaneval,
    humaneval_if_materialized,
    load_problems,
    read_jsonl,
    split_problems,
)
from autorl_gym.tasks.humaneval.executor import ExecLimits, Executor, Program
from autorl_gym.tasks.qa import SplitLoadError

DEV_SIZE, DEV_SEED = 32, 20240917


def real_data_dir() -> Path:
    """The folder holding ``humaneval/HumanEval.jsonl.gz`` (``conftest.shared_data``: skipped when
    absent, failed instead in CI)."""
    return shared_data("humaneval", "HumanEval.jsonl.gz").parent


@pytest.fixture(scope="module")
def data_env(tmp_path_factory: pytest.TempPathFactory):
    root = real_data_dir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_DIR_ENV, str(root))
        mp.setenv("AUTORL_GYM_CACHE", str(tmp_path_factory.mktemp("humaneval_cache")))
        yield root


@pytest.fixture(scope="module")
def problems(data_env) -> list[HumanEvalProblem]:
    return load_problems()[0]


def test_the_real_file_loads_sorted(problems: list[HumanEvalProblem]) -> None:
    assert len(problems) == 164
    assert [p.number for p in problems] == list(range(164))
    assert problems[0].task_id == "HumanEval/0" and problems[0].entry_point == "has_close_elements"


def test_split_sizes_and_disjointness(problems: list[HumanEvalProblem]) -> None:
    splits = split_problems(problems, DEV_SIZE, DEV_SEED)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 82 - DEV_SIZE, "dev": DEV_SIZE, "test": 82}
    ids = {k: {p.task_id for p in v} for k, v in splits.items()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"] \
        and not ids["dev"] & ids["test"]
    assert ids["train"] | ids["dev"] | ids["test"] == {p.task_id for p in problems}
    assert {p.number for p in splits["test"]} == set(range(82, 164))  # the last 82
    assert all(p.number < 82 for p in splits["train"] + splits["dev"])
    # seeded: the same seed draws the same slice, another seed another one
    assert split_problems(problems, DEV_SIZE, DEV_SEED)["dev"] == splits["dev"]
    assert split_problems(problems, DEV_SIZE, DEV_SEED + 1)["dev"] != splits["dev"]
    with pytest.raises(ValueError, match="dev_size"):
        split_problems(problems, 82, DEV_SEED)


def test_materialized_once_with_manifest(data_env, problems, tmp_path: Path) -> None:
    assets = ensure_humaneval(DEV_SIZE, DEV_SEED, root=tmp_path)
    m = assets.manifest
    assert m.sizes == {"train": 82 - DEV_SIZE, "dev": DEV_SIZE, "test": 82}
    assert m.source.endswith("HumanEval.jsonl.gz")
    assert set(m.file_digests) == {"train/train.jsonl", "hidden/dev.jsonl", "hidden/test.jsonl"}
    for split in ("train", "dev", "test"):
        loaded = read_jsonl(assets.split_path(split))
        assert [p.task_id for p in loaded] == m.task_ids[split]
    train = read_jsonl(assets.split_path("train"))
    assert all(p.canonical_solution and p.test for p in train)  # visible with solutions, tests
    # the second call reuses the files (same mtime), and finds them without writing
    mtime = assets.split_path("test").stat().st_mtime_ns
    again = ensure_humaneval(DEV_SIZE, DEV_SEED, root=tmp_path)
    assert again.root == assets.root and assets.split_path("test").stat().st_mtime_ns == mtime
    assert humaneval_if_materialized(DEV_SIZE, DEV_SEED, root=tmp_path) is not None
    assert humaneval_if_materialized(DEV_SIZE + 1, DEV_SEED, root=tmp_path) is None
    # a damaged split file is noticed by its digest and written again
    assets.split_path("dev").write_text("tampered\n")
    ensure_humaneval(DEV_SIZE, DEV_SEED, root=tmp_path)
    assert [p.task_id for p in read_jsonl(assets.split_path("dev"))] == m.task_ids["dev"]


def test_hidden_splits_never_in_the_visible_folder(data_env, tmp_path: Path) -> None:
    assets = ensure_humaneval(DEV_SIZE, DEV_SEED, root=tmp_path)
    visible = sorted(p.relative_to(assets.train_dir) for p in assets.train_dir.rglob("*"))
    assert visible == [Path("train.jsonl")]
    text = assets.split_path("train").read_text()
    for split in ("dev", "test"):
        assert not assets.split_path(split).is_relative_to(assets.train_dir)
        for p in read_jsonl(assets.split_path(split)):
            assert json.dumps(p.task_id) not in text
            assert json.dumps(p.prompt) not in text and json.dumps(p.test) not in text


def _write_gz(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))


GOOD = {"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
        "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2]), "expected an object"),
    (json.dumps({**GOOD, "test": 3}), "non-string fields: test"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "prompt"}), "fields: prompt"),
    (json.dumps({**GOOD, "task_id": "Other/1"}), "is not like 'HumanEval/N'"),
    (json.dumps({**GOOD, "entry_point": "not a name"}), "is not a Python name"),
    (json.dumps(GOOD), "appears twice"),
])
def test_malformed_file_names_path_and_line(tmp_path: Path, monkeypatch, line: str,
                                            message: str) -> None:
    path = tmp_path / "humaneval" / "HumanEval.jsonl.gz"
    _write_gz(path, [json.dumps(GOOD), line])
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(SplitLoadError, match=message) as err:
        load_problems()
    where = str(path) + (":2" if "twice" not in message else "")
    assert where in str(err.value)


def test_missing_and_unreadable_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(SplitLoadError, match="HumanEval file not found") as err:
        load_problems()
    assert str(tmp_path / "humaneval" / "HumanEval.jsonl.gz") in str(err.value)
    bad = tmp_path / "humaneval" / "HumanEval.jsonl.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(SplitLoadError, match="cannot be read"):
        load_problems()


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Executor:
    try:
        make_sandbox("local", SandboxSpec(workspace=tmp_path_factory.mktemp("probe"))).close()
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
    return Executor(ExecLimits(timeout_s=10.0), sandbox="local", workers=2,
                    tmp_root=tmp_path_factory.mktemp("exec"))


def _programs(problems: list[HumanEvalProblem], completion=None) -> list[Program]:
    return [Program(task_id=p.task_id, prompt=p.prompt,
                    completion=p.canonical_solution if completion is None else completion(p),
                    test=p.test, entry_point=p.entry_point) for p in problems]


def test_canonical_solutions_all_pass(problems, executor: Executor) -> None:
    outs = executor.run(_programs(problems))
    failed = [(o.task_id, o.status, o.reason) for o in outs if not o.passed]
    assert failed == []
    assert len(outs) == 164


def test_broken_solutions_all_fail(problems, executor: Executor) -> None:
    """Three ways to be wrong: no body, a wrong constant, and another problem's solution."""
    subset = problems[::4]
    for completion in (lambda p: "    pass\n", lambda p: "    return 0\n",
                       lambda p: problems[(p.number + 1) % 164].canonical_solution):
        outs = executor.run(_programs(subset, completion))
        assert [o.task_id for o in outs if o.passed] == []
        assert all(o.reason for o in outs)
