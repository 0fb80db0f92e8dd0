"""A local stand-in for the exported Harbor task's base image, where no registry is reachable.

``docker import`` of a root filesystem taken from this host: Debian's python3.11 with its
standard library, a few shell tools, ``useradd``, every shared library they need (ldd), and the
exporting environment's own installs of what the task's ``requirements.txt`` pin (torch, the
training stack, what grading imports) with their dependencies, under Python's site folder. So
the exported Dockerfiles' ``pip install -r requirements.txt`` finds every pin satisfied and needs
no index. Built once per engine and recipe: the tag is a hash of this file and of every
distribution's name and version that goes in, so an engine that keeps an image from an older
recipe (fewer pins, other versions) builds a new one instead of reusing it."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from packaging.requirements import Requirement

REPO = "autorl-gym/harbor-base"
TOOLS = ("bash", "sh", "dash", "ls", "cat", "cp", "mv", "rm", "mkdir", "chmod", "chown", "id",
         "env", "sleep", "tar", "gzip", "find", "grep", "sed", "head", "tail", "tee", "touch",
         "ln", "readlink", "dirname", "basename", "uname", "whoami", "stat", "du", "mktemp",
         "true", "false", "echo", "printf", "test", "wc", "sort", "xargs", "tr", "cut", "date",
         "python3.11", "python3", "curl")
SBIN = ("useradd", "groupadd")
ROOTS = ("torch", "pip", "setuptools")
SITE = "usr/local/lib/python3.11/dist-packages"


def _closure(names: list[str]) -> list[md.Distribution]:
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _ldd(paths: list[str]) -> set[str]:
    libs: set[str] = set()
    for i in range(0, len(paths), 200):
        out = subprocess.run(["ldd", *paths[i:i + 200]], capture_output=True, text=True).stdout
        libs.update(re.findall(r"(/\S+\.so[.\d]*)\s+\(0x", out))
    return {lib for lib in libs if not lib.startswith(sys.prefix)}


def _add(tar: tarfile.TarFile, src: str, arc: str) -> None:
    info = tar.gettarinfo(src, arc)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if info.isreg():
        with open(src, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _dir(tar: tarfile.TarFile, arc: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(arc)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _link(tar: tarfile.TarFile, arc: str, target: str) -> None:
    info = tarfile.TarInfo(arc)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _text(tar: tarfile.TarFile, arc: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(arc)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_rootfs(out: Path, dist_names: list[str]) -> int:
    """The root filesystem as a tar at ``out``; returns the number of files."""
    bins = [p for t in TOOLS if (p := f"/usr/bin/{t}") and os.path.exists(p)]
    bins += [p for t in SBIN if (p := f"/usr/sbin/{t}") and os.path.exists(p)]
    stdlib = Path("/usr/lib/python3.11")
    files: dict[str, str] = {}
    for b in bins:
        files[b.lstrip("/")] = b
    for p in stdlib.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and "test" not in p.parts[:5] \
                and p.name != "EXTERNALLY-MANAGED":
            files[str(p).lstrip("/")] = str(p)
    sos = [str(p) for p in stdlib.rglob("*.so")]
    for dist in _closure([*dist_names, *ROOTS]):
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            src = Path(dist.locate_file(f))
            rel = Path(os.path.normpath(base / f)).relative_to(base) if ".." not in f.parts else None
            if rel is None or not src.is_file() or "__pycache__" in src.parts:
                continue
            files[f"{SITE}/{rel}"] = str(src)
            if src.suffix == ".so" or ".so." in src.name:
                sos.append(str(src))
    for lib in _ldd(bins + sos) | {"/lib64/ld-linux-x86-64.so.2"}:
        real = os.path.realpath(lib)
        files[real.lstrip("/")] = real
        if lib != real:
            files.setdefault("LINK:" + lib.lstrip("/"), real)
    with tarfile.open(out, "w") as tar:
        for d in ("usr", "usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "var", "root",
                  "home", "opt", "proc", "sys", "dev", "run", "var/lib"):
            _dir(tar, d)
        _dir(tar, "tmp", 0o1777)
        for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                             ("lib64", "usr/lib64")):
            _link(tar, name, target)
        _link(tar, "usr/bin/python", "python3.11")
        dirs: set[str] = set()
        final: dict[str, tuple[bool, str]] = {}
        for arc, src in files.items():
            link = arc.startswith("LINK:")
            arc = arc.removeprefix("LINK:")
            arc = re.sub(r"^lib64/", "usr/lib64/", re.sub(r"^lib/", "usr/lib/", arc))
            if not (link and arc in final):
                final[arc] = (link, src)
        for arc, (link, src) in sorted(final.items()):
            parent = str(Path(arc).parent)
            for i in range(1, len(Path(parent).parts) + 1):
                d = "/".join(Path(parent).parts[:i])
                if d not in dirs and d not in ("usr", "usr/bin", "usr/sbin", "usr/lib", "usr/lib64"):
                    dirs.add(d)
                    _dir(tar, d)
            if link:
                _link(tar, arc, src)
            else:
                _add(tar, src, arc)
        _text(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
        _text(tar, "etc/group", "root:x:0:\n")
        _text(tar, "etc/shadow", "root:*:19000:0:99999:7:::\n")
        _text(tar, "etc/gshadow", "root:*::\n")
        _text(tar, "etc/login.defs", "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n"
                                     "CREATE_HOME yes\n")
        _text(tar, "etc/hosts", "127.0.0.1 localhost\n")
    return len(files)


def base_tag(dist_names: list[str]) -> str:
    """The local base image's tag for these pins: a hash of the recipe (this file) and of each
    distribution in the closure, by name and version."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for dist in sorted(_closure([*dist_names, *ROOTS]), key=lambda d: d.metadata["Name"].lower()):
        digest.update(f"{dist.metadata['Name'].lower()}=={dist.version}\n".encode())
    return f"{REPO}:{digest.hexdigest()[:12]}"


def ensure_local_base(client, dist_names: list[str], scratch: Path) -> str:  # type: ignore[no-untyped-def]
    """The tag of the local base image, imported now if the engine lacks it."""
    from docker.errors import ImageNotFound

    tag = base_tag(dist_names)
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    tar = scratch / "harbor-base-rootfs.tar"
    write_rootfs(tar, dist_names)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    subprocess.run(["docker", "import", "--change", f"ENV PATH={path}",
                    "--change", "CMD [\"bash\"]", str(tar), tag], check=True,
                   capture_output=True)
    tar.unlink()
    return tag
