"""The micro assets as shipped artifacts: fixed files with a published sha256, verified when loaded.

CPU pre-training does not reproduce bit for bit across machines, so the micro base models are not
built on first use: they ship with the package, under ``autorl_gym/micro/artifacts/``::

    artifacts.json          the published manifest: one entry per ``<name>-v<version>``
    <name>-v<version>/      the shipped files of that asset (plain files, ``<folder>.tar.xz``)

An entry lists the sha256 of every shipped file (``files``), the folders shipped as one
deterministic ``.tar.xz`` each (``archives``), the files a seeded, reproducible generator writes
instead of shipping them (``generated``, written by ``generator``, a ``module:function`` taking the
destination folder) and the sha256 of every file of the installed folder (``content``).
:func:`ensure_installed` installs an asset once into ``$AUTORL_GYM_CACHE/micro/<name>-v<version>/``
(copy, extract, generate, then check every file against ``content``; file-locked, atomic) and on
every later load checks the installed files again (once per process and file version): a file that
does not match its published hash is refused (:class:`ArtifactMismatch`, naming the file, the
expected and the actual hash, and the fix).

**Adding an asset** (or the next version of one): register how it is built in :data:`BUILDERS`
(version, build function, archives, generated files), run
``autorl-gym micro build NAME --out autorl_gym/micro/artifacts`` (or ``--from DIR`` to pack a
build already on disk), which writes ``<name>-v<version>/`` and merges the printed entry into
``artifacts.json``, and load it with ``ensure_installed(NAME, VERSION)``. A changed artifact is a
new version and a new scenario id (``-v1``), never a silent change of one already published.
"""

from __future__ import annotations

import fcntl
import importlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel

from autorl_gym.core.durable import file_digest
from autorl_gym.core.paths import cache_dir as default_cache_dir
from autorl_gym.core.scenario import ScenarioError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
MANIFEST_NAME = "artifacts.json"
ARCHIVE_SUFFIX = ".tar.xz"


class ArtifactError(ScenarioError):
    """A micro asset that cannot be installed or loaded (the message says why and what to do);
    a ScenarioError, so every command reports it as one clear message."""


class ArtifactMismatch(ArtifactError):
    """A file whose sha256 is not the published one (or that is missing)."""

    def __init__(self, path: Path, expected: str, actual: str | None, fix: str) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        got = "the file is missing" if actual is None else f"actual sha256 {actual}"
        super().__init__(f"{path}: does not match its published hash (expected sha256 {expected}, "
                         f"{got}); refused. {fix}")


class ArtifactEntry(BaseModel):
    """One published micro asset, ``<name>-v<version>``."""

    name: str
    version: int
    files: dict[str, str]                 # shipped file (relative to its folder) -> sha256
    archives: list[str] = []              # folders shipped as "<folder>.tar.xz" (in ``files``)
    generated: list[str] = []             # files written by ``generator``, not shipped
    generator: str | None = None          # "module:function(dest: Path) -> None"
    content: dict[str, str]               # every file of the installed folder -> sha256
    notes: str = ""

    @property
    def key(self) -> str:
        return asset_key(self.name, self.version)


class ArtifactsManifest(BaseModel):
    format: int = 1
    artifacts: dict[str, ArtifactEntry] = {}


class Builder(BaseModel):
    """How the next version of a micro asset is built (``autorl-gym micro build``)."""

    version: str            # "module:ATTRIBUTE" holding the current version number
    build: str              # "module:function(dest: Path, progress: bool) -> Any"
    archives: list[str] = []
    generated: list[str] = []
    generator: str | None = None
    notes: str = ""


# The registry of micro assets that can be built and packed; one entry per asset name.
BUILDERS: dict[str, Builder] = {
    "arith": Builder(
        version="autorl_gym.micro.data:MICRO_VERSION",
        build="autorl_gym.micro.build:build_arith",
        generated=["train/train.jsonl", "hidden/dev.jsonl", "hidden/test.jsonl"],
        generator="autorl_gym.micro.build:write_arith_data",
        notes="the splits are pure-Python seeded generation (reproducible): generated at install "
              "and checked against their published hash",
    ),
    "arith_multistep": Builder(
        version="autorl_gym.micro.multistep:MULTISTEP_VERSION",
        build="autorl_gym.micro.multistep:build_multistep",
        generated=["train/train.jsonl", "hidden/dev.jsonl", "hidden/test.jsonl"],
        generator="autorl_gym.micro.multistep:write_multistep_data",
        notes="data only (the base model is micro:arith): multi-step problems whose answers show "
              "only '#### N'; pure-Python seeded generation, generated at install and checked "
              "against their published hash",
    ),
    "textworld": Builder(
        version="autorl_gym.micro.textworld:TEXTWORLD_VERSION",
        build="autorl_gym.micro.textworld:build_textworld",
        archives=["train", "hidden"],
        notes="the games are shipped: a compiled game's Z-machine header holds its compile date "
              "(serial number), so a rebuild differs on another day in those bytes",
    ),
    "deepsearch": Builder(
        version="autorl_gym.micro.deepsearch:DEEPSEARCH_VERSION",
        build="autorl_gym.micro.deepsearch:build_deepsearch",
        archives=["train", "hidden"],
        notes="the generated worlds (documents, questions, answer keys) are shipped with the "
              "policy, so the BM25 index and the questions are the same everywhere",
    ),
    "webshop": Builder(
        version="autorl_gym.micro.webshop:WEBSHOP_VERSION",
        build="autorl_gym.micro.webshop:build_webshop",
        archives=["train", "hidden"],
        notes="the generated shop, its BM25 index and the sessions are shipped with the policy",
    ),
}


def asset_key(name: str, version: int) -> str:
    return f"{name}-v{version}"


def resolve(ref: str) -> Any:
    """The object a ``module:attribute`` reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------- manifest


def read_manifest(artifacts_dir: Path | None = None) -> ArtifactsManifest:
    path = (artifacts_dir or ARTIFACTS_DIR) / MANIFEST_NAME
    if not path.is_file():
        return ArtifactsManifest()
    return ArtifactsManifest.model_validate_json(path.read_text())


def published(name: str, version: int, artifacts_dir: Path | None = None) -> ArtifactEntry:
    key = asset_key(name, version)
    entry = read_manifest(artifacts_dir).artifacts.get(key)
    if entry is None:
        raise ArtifactError(
            f"micro asset {key!r} is not published in {(artifacts_dir or ARTIFACTS_DIR) / MANIFEST_NAME} "
            f"(reinstall autorl-gym; a new version is made with `autorl-gym micro build {name}`)")
    return entry


# --------------------------------------------------------------------------- verification

_VERIFIED: dict[tuple[str, int, int], str] = {}   # (path, size, mtime_ns) -> sha256, per process


def _digest(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = file_digest(path)
    return _VERIFIED[key]


def verify_files(root: Path, expected: dict[str, str], fix: str) -> None:
    """Every file of ``expected`` under ``root`` has its published sha256, else ArtifactMismatch."""
    for rel, sha in sorted(expected.items()):
        actual = _digest(root / rel)
        if actual != sha:
            raise ArtifactMismatch(root / rel, sha, actual, fix)


def _fix_installed(name: str, root: Path) -> str:
    return (f"Reinstall it from the package: `autorl-gym micro install {name} --force` (or remove "
            f"{root}; it is installed again on next use).")


_FIX_PACKAGE = ("The package's copy is damaged: reinstall autorl-gym (or, in a checkout, restore "
                "autorl_gym/micro/artifacts with git).")


# --------------------------------------------------------------------------- install and load


class InstalledAssets(BaseModel):
    """An installed micro asset's folders: the policy, the visible train folder, the hidden splits."""

    root: Path
    model_dir: Path
    train_dir: Path
    hidden_dir: Path
    train_split: ClassVar[str] = ""  # where the train split lies under ``train_dir``

    def split_dir(self, split: str) -> Path:
        return self.train_dir / self.train_split if split == "train" else self.hidden_dir / split

    @classmethod
    def at(cls, root: Path) -> Self:
        return cls(root=root, model_dir=root / "model", train_dir=root / "train",
                   hidden_dir=root / "hidden")

    @classmethod
    def ensure(cls, name: str, version: int, cache_dir: Path | None = None) -> Self:
        """Installed on first use, checked on every load (:func:`ensure_installed`)."""
        return cls.at(ensure_installed(name, version, cache_dir))

    @classmethod
    def if_installed(cls, name: str, version: int, cache_dir: Path | None = None) -> Self | None:
        """The installed asset if it is on disk; never installs."""
        if not is_installed(name, version, cache_dir):
            return None
        return cls.at(installed_root(name, version, cache_dir))


def installed_root(name: str, version: int, cache_dir: Path | None = None) -> Path:
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "micro" / asset_key(name, version)


def is_installed(name: str, version: int, cache_dir: Path | None = None) -> bool:
    """Whether an install of this asset is on disk (not checked: :func:`ensure_installed` checks)."""
    return (installed_root(name, version, cache_dir) / ".installed").is_file()


def ensure_installed(name: str, version: int, cache_dir: Path | None = None,
                     artifacts_dir: Path | None = None) -> Path:
    """The installed folder of ``<name>-v<version>``, installed from the shipped artifact on first
    use; every file is checked against its published sha256 (ArtifactMismatch if one differs)."""
    entry = published(name, version, artifacts_dir)
    root = installed_root(name, version, cache_dir)
    if not (root / ".installed").is_file():
        _install(entry, root, artifacts_dir or ARTIFACTS_DIR)
    verify_files(root, entry.content, _fix_installed(name, root))
    return root


def reinstall(name: str, version: int, cache_dir: Path | None = None) -> Path:
    root = installed_root(name, version, cache_dir)
    with _lock(root):
        if root.exists():
            shutil.rmtree(root)
    return ensure_installed(name, version, cache_dir)


class _lock:  # noqa: N801 - used as a context manager
    def __init__(self, root: Path) -> None:
        root.parent.mkdir(parents=True, exist_ok=True)
        self.path = root.parent / f".{root.name}.lock"

    def __enter__(self) -> None:
        self.fh = self.path.open("w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _install(entry: ArtifactEntry, root: Path, artifacts_dir: Path) -> None:
    src = artifacts_dir / entry.key
    with _lock(root):
        if (root / ".installed").is_file():   # another process installed it while we waited
            return
        if root.is_dir() and all((root / rel).is_file() for rel in entry.content):
            # a complete folder from before installs were marked (a local build): kept only if
            # every file is the published one
            verify_files(root, entry.content, _fix_installed(entry.name, root))
            (root / ".installed").write_text(json.dumps({"key": entry.key, "adopted": True}) + "\n")
            return
        verify_files(src, entry.files, _FIX_PACKAGE)
        prefix = f".{root.name}."
        for stale in root.parent.glob(prefix + "*"):   # left by a killed install; we hold the lock
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=root.parent))
        try:
            for rel in entry.files:
                if rel.endswith(ARCHIVE_SUFFIX):
                    with tarfile.open(src / rel, "r:xz") as tar:
                        tar.extractall(tmp, filter="data")
                else:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src / rel, tmp / rel)
            if entry.generator:
                resolve(entry.generator)(tmp)
            verify_files(tmp, entry.content, _generated_fix(entry))
            (tmp / ".installed").write_text(json.dumps({"key": entry.key}) + "\n")
            _make_readable(tmp)
            if root.exists():   # a partial leftover (a killed build of an older release)
                shutil.rmtree(root)
            tmp.rename(root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _generated_fix(entry: ArtifactEntry) -> str:
    if not entry.generated:
        return _FIX_PACKAGE
    return (f"The files {entry.generated} are generated here from fixed seeds by {entry.generator} "
            f"and must be reproducible; a mismatch means this installation generates other data "
            f"(a changed generator or Python version): reinstall autorl-gym.")


def _make_readable(root: Path) -> None:
    """World-readable assets (mkdtemp makes 0700): the sandbox may run as another user."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


# --------------------------------------------------------------------------- packing


def _tar_xz(folder: Path, arcname: str, out: Path) -> None:
    """A deterministic archive: sorted members, no owner, mtime 0, modes 0644/0755."""
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in [folder, *sorted(folder.rglob("*"))]:
            rel = Path(arcname) / path.relative_to(folder)
            tar.add(path, arcname=str(rel), recursive=False, filter=clean)
    import lzma

    out.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_digest(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def pack(name: str, version: int, built: Path, out_dir: Path, builder: Builder) -> ArtifactEntry:
    """Pack a build in ``built`` as ``out_dir/<name>-v<version>/`` and return its manifest entry
    (the hashes to publish). Generated files are not shipped; archived folders are one
    ``.tar.xz`` each; every other file is copied."""
    content = _tree(built)
    missing = [rel for rel in builder.generated if rel not in content]
    if missing:
        raise ArtifactError(f"{built}: the build lacks the generated files {missing}")
    dest = out_dir / asset_key(name, version)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files: dict[str, str] = {}
    for folder in builder.archives:
        _tar_xz(built / folder, folder, dest / f"{folder}{ARCHIVE_SUFFIX}")
        files[f"{folder}{ARCHIVE_SUFFIX}"] = file_digest(dest / f"{folder}{ARCHIVE_SUFFIX}")
    for rel in content:
        if rel in builder.generated or any(rel.startswith(f"{a}/") for a in builder.archives):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built / rel, dest / rel)
        files[rel] = file_digest(dest / rel)
    if builder.generator:   # generated files must come out the same from the generator alone
        with tempfile.TemporaryDirectory() as tmp:
            resolve(builder.generator)(Path(tmp))
            for rel in builder.generated:
                if file_digest(Path(tmp) / rel) != content[rel]:
                    raise ArtifactError(f"{rel}: {builder.generator} does not reproduce the build's file")
    return ArtifactEntry(name=name, version=version, files=files, archives=builder.archives,
                         generated=builder.generated, generator=builder.generator, content=content,
                         notes=builder.notes)


def publish(entry: ArtifactEntry, artifacts_dir: Path) -> Path:
    """Merge ``entry`` into ``artifacts_dir/artifacts.json`` (refusing to change a published one)."""
    manifest = read_manifest(artifacts_dir)
    old = manifest.artifacts.get(entry.key)
    if old is not None and old.content != entry.content:
        raise ArtifactError(f"{entry.key} is published already with other files: a changed artifact "
                            f"is a new version (bump the version, and the scenario id)")
    manifest.artifacts[entry.key] = entry
    manifest.artifacts = dict(sorted(manifest.artifacts.items()))
    path = artifacts_dir / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=1) + "\n")
    return path


def build(name: str, out_dir: Path, from_dir: Path | None = None, progress: bool = True,
          on_built: Callable[[Path], None] | None = None) -> ArtifactEntry:
    """Build (or take ``from_dir``) the current version of ``name`` and pack it into ``out_dir``."""
    if name not in BUILDERS:
        raise ArtifactError(f"unknown micro asset {name!r} (known: {', '.join(sorted(BUILDERS))})")
    builder = BUILDERS[name]
    version = int(resolve(builder.version))
    out_dir.mkdir(parents=True, exist_ok=True)
    if from_dir is not None:
        return pack(name, version, from_dir, out_dir, builder)
    with tempfile.TemporaryDirectory(prefix=f"build-{name}-") as tmp:
        resolve(builder.build)(Path(tmp) / "build", progress)
        if on_built:
            on_built(Path(tmp) / "build")
        return pack(name, version, Path(tmp) / "build", out_dir, builder)
