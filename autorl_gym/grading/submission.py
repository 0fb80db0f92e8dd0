"""What a submission is, and how it is taken: a full model directory or a LoRA adapter, read
inside the workspace without following a link (:mod:`autorl_gym.runtime.safe_walk`), checked before any
byte of its weights is read, copied into a host-only store and identified by a hash of its
weights' contents.

A submission is *pinned* (:func:`pin_submission`): its weights, config and tokenizer files are
copied (reflinked where the file system can) out of the workspace into a folder the sandbox never
sees, and hashed while they are copied; every grading of it reads that copy, so what sits at the
submitted path afterwards changes nothing. Before anything is read, each file is checked: no
link, a regular file, not sparse (blocks on disk far fewer than its size), the total under the
scenario's size cap, and for safetensors a header whose tensors' declared byte ranges exactly
tile the file. Pickle weights (``*.bin``) are refused, never unpickled. Hashing streams each
tensor's bytes from the file (a few MiB in memory, whatever the model's size).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import stat
import struct
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from autorl_gym.core.records import SubmissionError, SubmissionInfo
from autorl_gym.runtime import safe_walk
from autorl_gym.runtime.safe_walk import Refusal, UnsafePath


class SnapshotFailed(RuntimeError):
    """The host could not store a submission's snapshot (its disk is full): not the submitter's fault."""


#: integrity event kinds of submission refusals
REFUSED = "submission.refused"
SNAPSHOT_CHANGED = "submission.snapshot_changed"


SAFETENSORS_FULL = ("model.safetensors", "model.safetensors.index.json")
BIN_FULL = ("pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
#: besides the weights, the files of a model folder that are taken (configs, tokenizers, templates)
META_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")
MAX_META_BYTES = 64 << 20
MIN_SUBMISSION_BYTES = 64 << 20
# a header is ~150 bytes a tensor (a 72B model's shard: ~100 KB); parsed JSON takes ~10 times its
# text in memory, so this bounds what a header can make the host allocate
MAX_HEADER_BYTES = 8 << 20
MAX_ENTRIES = 10_000
_CHUNK = 4 << 20
_FICLONE = 0x40049409


@dataclass(frozen=True)
class SubmissionLimits:
    """What a submission may be on disk: ``max_bytes`` in all (weights, config, tokenizer)."""

    max_bytes: int


def submission_limits(max_bytes: int | None, factor: float, base_weight_bytes: int) -> SubmissionLimits:
    """The scenario's cap, or ``factor`` times the base model's weight files (at least 64 MiB)."""
    return SubmissionLimits(max_bytes or max(int(factor * base_weight_bytes), MIN_SUBMISSION_BYTES))


# --------------------------------------------------------------------------- what a folder is
def _classify(names: set[str], shown: str) -> tuple[Literal["full", "lora"], list[str], bool]:
    """(kind, weight file names, has a tokenizer) from a folder's regular file names."""
    has_tok = any(f in names for f in TOKENIZER_FILES)
    if "adapter_config.json" in names:
        files = [n for n in ("adapter_model.safetensors", "adapter_model.bin") if n in names]
        if not files:
            raise SubmissionError(
                f"{shown}: LoRA adapter has adapter_config.json but no weights: "
                "expected adapter_model.safetensors or adapter_model.bin (save with "
                "model.save_pretrained(dir) on the PeftModel)")
        return "lora", files[:1], has_tok
    if "config.json" in names:
        for single, index, prefix, suffix in ((*SAFETENSORS_FULL, "model-", ".safetensors"),
                                              (*BIN_FULL, "pytorch_model-", ".bin")):
            if single in names:
                return "full", [single], has_tok
            if index in names:
                shards = sorted(n for n in names if n.startswith(prefix) and n.endswith(suffix))
                if shards:
                    return "full", shards, has_tok
        raise SubmissionError(
            f"{shown}: has config.json but no weights: expected model.safetensors, "
            "sharded model-*.safetensors with model.safetensors.index.json, or pytorch_model.bin")
    present = sorted(names)[:12]
    raise SubmissionError(
        f"{shown}: not a model: a full model needs config.json plus model.safetensors "
        "(or pytorch_model.bin); a LoRA adapter needs adapter_config.json plus "
        f"adapter_model.safetensors (or .bin). Found: {present or 'no files'}")


def inspect_submission(path: Path) -> SubmissionInfo:
    """Classify a host-owned directory (the base model, a pinned snapshot) as a full model or a
    LoRA adapter, or refuse it."""
    if not path.is_dir():
        raise SubmissionError(f"{path.name}: not a directory")
    names = {p.name for p in path.iterdir() if p.is_file()}
    kind, weights, has_tok = _classify(names, path.name)
    return SubmissionInfo(path=path, kind=kind, weight_files=[path / n for n in weights],
                          has_tokenizer=has_tok)


# --------------------------------------------------------------------------- safetensors headers
# dtype -> (bits per element, the torch dtype's name as the weights hash writes it)
_DTYPES: dict[str, tuple[int, str]] = {
    "BOOL": (8, "torch.bool"), "U8": (8, "torch.uint8"), "I8": (8, "torch.int8"),
    "F8_E4M3": (8, "torch.float8_e4m3fn"), "F8_E5M2": (8, "torch.float8_e5m2"),
    "I16": (16, "torch.int16"), "U16": (16, "torch.uint16"), "F16": (16, "torch.float16"),
    "BF16": (16, "torch.bfloat16"), "I32": (32, "torch.int32"), "U32": (32, "torch.uint32"),
    "F32": (32, "torch.float32"), "I64": (64, "torch.int64"), "U64": (64, "torch.uint64"),
    "F64": (64, "torch.float64"),
}


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.pread(fd, min(_CHUNK, n - len(out)), offset + len(out))
        if not chunk:
            raise SubmissionError("the file is shorter than it was a moment ago", REFUSED)
        out += chunk
    return bytes(out)


def _header(fd: int, size: int, shown: str) -> tuple[int, list[_Tensor]]:
    """The data start and the tensors of a safetensors file, refused unless the declared byte
    ranges tile the file exactly (nothing declared that the file does not hold, nothing held
    that is not declared). Reads the header only."""
    def bad(why: str) -> SubmissionError:
        return SubmissionError(f"{shown}: not a valid safetensors file: {why}; save the weights "
                               "with save_pretrained (safetensors)", REFUSED)

    if size < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", _pread_all(fd, 8, 0))
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise bad(f"its header declares {n:,} bytes of header in a file of {size:,}")
    try:
        header = json.loads(_pread_all(fd, n, 8))
    except ValueError as e:
        raise bad(f"its header is not JSON ({e})") from e
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    tensors: list[_Tensor] = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = spec["dtype"], spec["shape"], spec["data_offsets"]
            assert dtype in _DTYPES and all(isinstance(d, int) and d >= 0 for d in shape)
            assert isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end
        except (AssertionError, KeyError, TypeError, ValueError):
            raise bad(f"tensor {safe_walk.printable(str(name))[:80]} is not described by a known dtype, "
                      "a shape and two offsets") from None
        nbytes = math.prod(shape) * _DTYPES[dtype][0] // 8
        if end - begin != nbytes:
            raise bad(f"tensor {name[:80]} declares {nbytes:,} bytes ({dtype} {shape}) over a "
                      f"range of {end - begin:,}")
        tensors.append(_Tensor(name, dtype, tuple(shape), begin, end))
    tensors.sort(key=lambda t: (t.begin, t.end))
    pos = 0
    for t in tensors:
        if t.begin != pos:
            raise bad(f"tensor {t.name[:80]} starts at {t.begin:,}, not at {pos:,} (a gap or an overlap)")
        pos = t.end
    if 8 + n + pos != size:
        raise bad(f"its tensors declare {pos:,} bytes of data; the file holds {size - 8 - n:,}")
    return 8 + n, tensors


def _hash_safetensors(fd: int, size: int, shown: str, out_fd: int | None = None) -> list[tuple[str, str]]:
    """(tensor name, digest of dtype, shape and bytes) for every tensor, streamed from ``fd``
    (and written to ``out_fd`` as read, header included, when given): one pass, a few MiB."""
    start, tensors = _header(fd, size, shown)
    if out_fd is not None:
        os.write(out_fd, _pread_all(fd, start, 0))
    digests: list[tuple[str, str]] = []
    pos = start
    for t in tensors:
        h = hashlib.sha256(f"{_DTYPES[t.dtype][1]}|{t.shape}|".encode())
        left = t.end - t.begin
        while left:
            chunk = os.pread(fd, min(_CHUNK, left), pos)
            if not chunk:
                raise SubmissionError(f"{shown}: the file is shorter than it was a moment ago", REFUSED)
            h.update(chunk)
            if out_fd is not None:
                _write_all(out_fd, chunk)
            pos += len(chunk)
            left -= len(chunk)
        digests.append((t.name, h.hexdigest()))
    return digests


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _combine(digests: list[tuple[str, str]]) -> str:
    # A tensor stored twice (tied embeddings: lm_head.weight written out by one saver, dropped
    # by another) counts once, under the last key in name order that holds those contents.
    total = hashlib.sha256()
    seen: set[str] = set()
    for key, digest in sorted(digests, reverse=True):
        if digest not in seen:
            seen.add(digest)
            total.update(f"{key}={digest}\n".encode())
    return total.hexdigest()


def _stream_sha256(fd: int, out_fd: int | None = None) -> str:
    h = hashlib.sha256()
    pos = 0
    while chunk := os.pread(fd, _CHUNK, pos):
        h.update(chunk)
        if out_fd is not None:
            _write_all(out_fd, chunk)
        pos += len(chunk)
    return h.hexdigest()


def _file_digests(fd: int, st: os.stat_result, shown: str) -> list[tuple[str, str]]:
    if shown.endswith(".safetensors"):
        return _hash_safetensors(fd, st.st_size, shown)
    # pickle weights of a trusted base model: the file's bytes, never unpickled
    return [(Path(shown).name, _stream_sha256(fd))]


_HashKey = tuple[tuple[str, int, int, int, int, int], ...]
_HASHES: OrderedDict[_HashKey, str] = OrderedDict()  # the last hashes, by the files' identity
_HASHES_KEPT = 64
_HASHES_LOCK = threading.Lock()


def _hash_key(files: list[Path]) -> _HashKey:
    key = []
    for f in files:
        st = os.stat(f)
        key.append((str(f.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(key)


def _remember(key: _HashKey, digest: str) -> None:
    with _HASHES_LOCK:
        _HASHES[key] = digest
        _HASHES.move_to_end(key)
        while len(_HASHES) > _HASHES_KEPT:
            _HASHES.popitem(last=False)


def weights_hash(files: list[Path]) -> str:
    """Hash of the tensors (names, dtypes, shapes, bytes), independent of file layout, streamed
    from the files of a host-owned folder (the base model, a pinned snapshot). Remembered by
    each file's identity (device, inode, size, mtime and ctime; no one can set a ctime back)."""
    try:
        key = _hash_key(files)
        with _HASHES_LOCK:
            known = _HASHES.get(key)
        if known is not None:
            return known
        digests: list[tuple[str, str]] = []
        for name, *_ in key:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                digests += _file_digests(fd, os.fstat(fd), name)
            finally:
                os.close(fd)
    except OSError as e:
        raise SubmissionError(f"cannot read the weights: {e}") from e
    digest = _combine(digests)
    _remember(key, digest)
    return digest


def weight_bytes(info: SubmissionInfo) -> int:
    return sum(f.stat().st_size for f in info.weight_files)


def model_dir_hash(model_dir: Path) -> str:
    return weights_hash(inspect_submission(model_dir).weight_files)


# --------------------------------------------------------------------------- taking a submission
def workspace_relpath(model_path: str, workspace: Path) -> str:
    """``model_path`` as a path relative to the workspace, decided on its text alone (links are
    never resolved: :func:`pin_submission` refuses them when it opens the path)."""
    raw = Path(model_path)
    if raw.is_absolute():
        for ws in (workspace.absolute(), workspace.resolve()):
            if Path(os.path.normpath(raw)).is_relative_to(ws):
                raw = Path(os.path.normpath(raw)).relative_to(ws)
                break
        else:
            raise SubmissionError(f"model_path {model_path!r} is outside the workspace; save your "
                                  "model under output/")
    parts = [p for p in raw.parts if p not in ("", ".")]
    if ".." in parts or not parts:
        raise SubmissionError(f"model_path {model_path!r} leads outside the workspace (or names "
                              "it whole); save your model under output/ and submit that folder")
    return "/".join(parts)


class CheckedModel(BaseModel):
    """A submission that passed the checks every submission passes before it is accepted;
    ``path`` is its pinned snapshot (or, for :func:`check_model`, the folder in the workspace)."""

    path: Path
    info: SubmissionInfo
    weights_hash: str
    source: str | None = None            # the submitted path, relative to the workspace
    snapshot_bytes: int | None = None    # bytes copied into the snapshot
    files_digest: str | None = None      # sha256 over every file of the snapshot


def _link_message(r: Refusal, model_path: str) -> str:
    return (f"model_path {model_path!r}: {r.detail}. A submission is read without following links: "
            "submit the model's own folder under output/ and copy files in rather than linking them")


def _take(model_path: str, workspace: Path, limits: SubmissionLimits | None,
          dest: Path | None) -> CheckedModel:
    rel = workspace_relpath(model_path, workspace)
    try:
        dfd = safe_walk.open_dir(workspace, rel)
    except UnsafePath as e:
        raise SubmissionError(_link_message(e.refusal, model_path), e.refusal.kind) from e
    except FileNotFoundError:
        raise SubmissionError(f"model_path {model_path!r} does not exist in the workspace") from None
    except NotADirectoryError:
        raise SubmissionError(f"model_path {model_path!r} is a file; submit the model's directory") from None
    opened: dict[str, tuple[int, os.stat_result]] = {}
    try:
        regular: set[str] = set()
        links: list[str] = []
        names = os.listdir(dfd)
        if len(names) > MAX_ENTRIES:
            raise SubmissionError(f"{rel}: {len(names):,} entries; a model folder holds a few dozen", REFUSED)
        for name in names:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links.append(name)
            elif stat.S_ISREG(st.st_mode) and safe_walk.name_ok(name):
                regular.add(name)
        # a link among the model's files is refused (other links, like subfolders, are not read)
        for name in sorted(n for n in links if n.endswith((*META_SUFFIXES, ".safetensors", ".bin"))):
            target = safe_walk.printable(os.readlink(name, dir_fd=dfd))
            r = Refusal(safe_walk.LINK_REFUSED, f"{rel}/{safe_walk.printable(name)}",
                        f"{rel}/{safe_walk.printable(name)} is a link (-> {target}); links are not followed")
            raise SubmissionError(_link_message(r, model_path), r.kind)
        kind, weights, has_tok = _classify(regular, rel)
        wanted = [*weights, *sorted(n for n in regular - set(weights) if n.endswith(META_SUFFIXES))]
        pickles = [n for n in weights if not n.endswith(".safetensors")]
        if pickles:
            raise SubmissionError(
                f"{rel}: {', '.join(pickles)} holds pickle weights, which are refused (a pickle can "
                "run code when it is loaded). Save the model as safetensors: "
                "model.save_pretrained(dir) (safe_serialization=True, the default)", REFUSED)
        total = 0
        for name in wanted:
            try:
                fd = safe_walk.open_file(dfd, name, f"{rel}/{name}")
            except UnsafePath as e:
                raise SubmissionError(_link_message(e.refusal, model_path), e.refusal.kind) from e
            st = os.fstat(fd)
            opened[name] = (fd, st)
            total += st.st_size
            if name not in weights and st.st_size > MAX_META_BYTES:
                raise SubmissionError(f"{rel}/{name}: {st.st_size:,} bytes, more than a config or "
                                      f"tokenizer file may be ({MAX_META_BYTES:,})", REFUSED)
            if st.st_size > (1 << 20) and st.st_blocks * 512 < st.st_size // 2:
                raise SubmissionError(
                    f"{rel}/{name}: a sparse file ({st.st_size:,} bytes declared, "
                    f"{st.st_blocks * 512:,} on disk); write the weights out in full", REFUSED)
        if limits is not None and total > limits.max_bytes:
            raise SubmissionError(f"{rel}: {total:,} bytes, more than this scenario accepts "
                                  f"({limits.max_bytes:,}: grader.max_submission_bytes)", REFUSED)
        for name in weights:  # every header, before any tensor byte is read
            fd, st = opened[name]
            _header(fd, st.st_size, f"{rel}/{name}")
        if dest is None:
            digests = [d for name in weights
                       for d in _hash_safetensors(opened[name][0], opened[name][1].st_size, f"{rel}/{name}")]
            info = SubmissionInfo(path=workspace / rel, kind=kind,
                                  weight_files=[workspace / rel / n for n in weights], has_tokenizer=has_tok)
            return CheckedModel(path=workspace / rel, info=info, weights_hash=_combine(digests), source=rel)
        return _snapshot(rel, opened, weights, dest, kind)
    except SnapshotFailed:
        raise
    except OSError as e:
        raise SubmissionError(f"model_path {model_path!r}: {e}") from e
    finally:
        for fd, _ in opened.values():
            os.close(fd)
        os.close(dfd)


def _snapshot(rel: str, opened: dict[str, tuple[int, os.stat_result]], weights: list[str],
              dest: Path, kind: str) -> CheckedModel:
    """Copy the opened files into ``dest`` (a new folder), hashing the weights as they are
    copied (a reflinked copy is hashed from the copy itself)."""
    if dest.exists():
        raise SubmissionError(f"the snapshot folder {dest} exists already")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        digests: list[tuple[str, str]] = []
        files: list[tuple[str, str]] = []
        copied = 0
        for name, (fd, st) in sorted(opened.items()):
            out = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            try:
                cloned = False
                with contextlib.suppress(OSError):
                    fcntl.ioctl(out, _FICLONE, fd)
                    cloned = True
                src = os.open(tmp / name, os.O_RDONLY | os.O_CLOEXEC) if cloned else fd
                try:
                    size = os.fstat(src).st_size if cloned else st.st_size
                    if size != st.st_size:  # it changed after it was checked
                        raise SubmissionError(f"{rel}/{name} changed while it was copied", REFUSED)
                    if name in weights:
                        d = _hash_safetensors(src, size, f"{rel}/{name}", None if cloned else out)
                        digests += d
                        files.append((name, _combine(d)))
                    else:
                        data = _pread_all(src, size, 0)
                        if not cloned:
                            _write_all(out, data)
                        files.append((name, hashlib.sha256(data).hexdigest()))
                    copied += size
                finally:
                    if cloned:
                        os.close(src)
            finally:
                os.close(out)
        os.replace(tmp, dest)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise SnapshotFailed(f"the submission could not be copied into {dest.parent}: {e}") from e
        raise
    whole = hashlib.sha256("".join(f"{n}={d}\n" for n, d in files).encode()).hexdigest()
    info = inspect_submission(dest)
    digest = _combine(digests)
    _remember(_hash_key(info.weight_files), digest)  # the copy was hashed as it was written
    return CheckedModel(path=dest, info=info, weights_hash=digest, source=rel,
                        snapshot_bytes=copied, files_digest=whole)


def check_model(model_path: str, workspace: Path, limits: SubmissionLimits | None = None) -> CheckedModel:
    """Check ``model_path`` in ``workspace`` as a submission is checked and hash its weights,
    streamed from the workspace, without pinning it (the server's check before it queues a
    submission; the episode pins with :func:`pin_submission`)."""
    return _take(model_path, workspace, limits, None)


def pin_submission(model_path: str, workspace: Path, dest: Path,
                   limits: SubmissionLimits | None = None) -> CheckedModel:
    """Check ``model_path`` in ``workspace`` and copy it into ``dest`` (a host-only folder that
    does not exist yet), hashing as it copies; the result's ``path`` is the snapshot, which every
    grading of this submission reads. SubmissionError says what is wrong."""
    return _take(model_path, workspace, limits, dest)


def pinned(record_path: Path, weights_hash: str) -> CheckedModel:
    """A pinned snapshot taken up again (the final test grading, a resumed run): refused if its
    weights no longer hash to what was recorded when it was accepted."""
    info = inspect_submission(record_path)
    now = weights_hash_of(info)
    if now != weights_hash:
        raise SubmissionError(f"the snapshot {record_path} no longer holds the submitted weights "
                              f"(hash {now[:12]}, recorded {weights_hash[:12]})", SNAPSHOT_CHANGED)
    return CheckedModel(path=record_path, info=info, weights_hash=weights_hash)


def weights_hash_of(info: SubmissionInfo) -> str:
    return weights_hash(info.weight_files)


# --------------------------------------------------------------------------- compatibility
def _read_json(path: Path) -> dict:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SubmissionError(f"{path.parent.name}/{path.name} is not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise SubmissionError(f"{path.parent.name}/{path.name} must hold a JSON object")
    return data


def _base_shapes(base_dir: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the base model's weights, read from file headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in inspect_submission(base_dir).weight_files:
        if f.suffix != ".safetensors":
            return {}
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                shapes[key] = tuple(fh.get_slice(key).get_shape())
    return shapes


def _adapter_shapes(info: SubmissionInfo) -> dict[str, tuple[int, ...]]:
    f = info.weight_files[0]
    if f.suffix != ".safetensors":  # pickles are refused when a submission is taken
        raise SubmissionError(f"{info.path.name}/{f.name}: pickle weights are not read; save the "
                              "adapter as safetensors", REFUSED)
    try:
        from safetensors import safe_open

        with safe_open(str(f), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except Exception as e:  # noqa: BLE001 - an unreadable adapter is the submitter's
        raise SubmissionError(
            f"{info.path.name}/{f.name}: cannot read the adapter weights ({e.__class__.__name__}: "
            f"{str(e)[:200]}); save them with save_pretrained on the PeftModel") from e


def check_adapter_matches_base(info: SubmissionInfo, base_dir: Path) -> None:
    """Refuse an adapter trained on another base model: every LoRA module must exist in the
    base with matching input and output sizes."""
    cfg = _read_json(info.path / "adapter_config.json")
    named = cfg.get("base_model_name_or_path")
    base = _base_shapes(base_dir)
    if not base:
        return
    mismatches: list[str] = []
    for key, shape in sorted(_adapter_shapes(info).items()):
        for part, dim in ((".lora_A.", 1), (".lora_B.", 0)):
            if part not in key:
                continue
            module = key.split(part)[0].removeprefix("base_model.model.")
            target = base.get(f"{module}.weight")
            if target is None:
                mismatches.append(f"{module} is not a module of the base model")
            elif len(target) != 2 or target[dim] != shape[dim]:
                mismatches.append(f"{module}: adapter {part.strip('.')} has shape {list(shape)}, "
                                  f"the base weight {list(target)}")
        if len(mismatches) >= 3:
            break
    if mismatches:
        raise SubmissionError(
            f"{info.path.name}: this LoRA adapter was trained for another base model"
            f"{f' ({named})' if named else ''}: " + "; ".join(mismatches)
            + ". Train the adapter on the scenario's base model (the folder model/ in the "
            "workspace, $MODEL_PATH) and submit that.")


def check_tokenizer(info: SubmissionInfo, base_dir: Path) -> None:
    """Refuse a tokenizer that cannot load, and a full model without one whose vocabulary
    differs from the base model's."""
    cfg_path = info.path / "tokenizer_config.json"
    if cfg_path.is_file():
        cfg = _read_json(cfg_path)
        extra = cfg.get("extra_special_tokens")
        if isinstance(extra, list):
            raise SubmissionError(
                f"{info.path.name}/tokenizer_config.json stores 'extra_special_tokens' as a list "
                f"({len(extra)} entries; some TRL versions save it so): vLLM and transformers 4 "
                "cannot load it, and transformers 5 adds its tokens again as new ids past the "
                "model's vocabulary. It must be a mapping of name to token. Delete the key (or set it to {}) "
                "and keep the tokens in 'additional_special_tokens', or save the tokenizer again "
                "with tokenizer.save_pretrained(dir) from a tokenizer loaded from model/.")
    if info.kind == "full" and not info.has_tokenizer:
        vocab = _read_json(info.path / "config.json").get("vocab_size")
        base_vocab = _read_json(base_dir / "config.json").get("vocab_size")
        if vocab is not None and base_vocab is not None and vocab != base_vocab:
            raise SubmissionError(
                f"{info.path.name}: tokenizer missing: the model's vocabulary ({vocab} tokens) "
                f"differs from the base model's ({base_vocab}), so the base tokenizer cannot stand "
                "in for it. Save the tokenizer next to the weights: tokenizer.save_pretrained(dir) "
                "(tokenizer.json and tokenizer_config.json).")


def check_submission(info: SubmissionInfo, base_dir: Path) -> None:
    """Every refusal that can be decided before loading the model."""
    if info.kind == "lora":
        check_adapter_matches_base(info, base_dir)
    check_tokenizer(info, base_dir)
