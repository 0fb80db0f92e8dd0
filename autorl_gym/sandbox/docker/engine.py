"""The Docker engine as the ``docker`` backend sees it: the client, and the images it runs.

:func:`docker_client` connects through the ``docker`` SDK (``DOCKER_HOST`` or the default
``unix:///var/run/docker.sock``) and pings the engine with a short timeout; an engine that is not
installed, not started, or not reachable is :class:`SandboxUnavailable` with a message saying how
to start one, so an episode refuses to start (as it does when bubblewrap cannot run).

:func:`ensure_hostbind_image` makes the image commands run in by default: no registry involved,
it is imported from a tar the package writes (a few empty folders and symlinks, no files). Its
folders are mount points for the host's system (``/usr``, ``/etc``, ``/lib*``), bound in
read-only the way the ``local`` backend binds them; the tag hashes the layout, so the image is
built once per host layout and found by tag afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
from typing import Any

from autorl_gym.core.sandbox import SandboxUnavailable

__all__ = [
    "ENGINE_START_HINT",
    "HOSTBIND_REPOSITORY",
    "docker_client",
    "engine_init_binary",
    "ensure_hostbind_image",
    "hostbind_layout",
    "hostbind_tag",
]

log = logging.getLogger(__name__)

HOSTBIND_REPOSITORY = "autorl-gym/hostbind"
_LAYOUT_VERSION = 1
PING_TIMEOUT_S = 5.0
API_TIMEOUT_S = 120
# Folders of the host bound read-only into the image (a symlink on the host is recreated as one).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Empty folders every container needs (mount points the engine fills: /proc, /dev, /sys; the
# private /tmp, whose mode the engine copies onto its tmpfs).
_EMPTY_DIRS = {"proc": 0o755, "dev": 0o755, "sys": 0o755, "tmp": 0o1777}

ENGINE_START_HINT = (
    "install and start one with `apt-get install -y docker.io` and then, as root, "
    "`dockerd --iptables=false --ip-masq=false --bridge=none &` (with `--storage-driver=vfs` "
    "where overlay2 cannot run); "
    'or choose sandbox="local" (bubblewrap)'
)


def docker_client() -> Any:
    """A ``docker.DockerClient`` whose engine answered a ping; SandboxUnavailable otherwise."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise SandboxUnavailable(f"the docker Python SDK is not installed ({e}): pip install docker") from e
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S, version="auto")
        client.api.timeout = PING_TIMEOUT_S
        client.ping()
        client.api.timeout = API_TIMEOUT_S
    except (DockerException, OSError) as e:
        raise SandboxUnavailable(
            f"the Docker engine is not reachable at {where} (not installed, not started, or no "
            f"permission on its socket): {_short(e)}; {ENGINE_START_HINT}"
        ) from e
    return client


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else e.__class__.__name__)[:300]


def hostbind_layout() -> list[tuple[str, str, str | int]]:
    """What the image holds, as ``(kind, path, mode or link target)``: this host's system
    folders as folders or symlinks, and the empty mount points."""
    entries: list[tuple[str, str, str | int]] = []
    for d in SYSTEM_DIRS:
        name = d.lstrip("/")
        if os.path.islink(d):
            entries.append(("link", name, os.readlink(d)))
        elif os.path.isdir(d):
            entries.append(("dir", name, 0o755))
    entries += [("dir", name, mode) for name, mode in _EMPTY_DIRS.items()]
    return sorted(entries, key=lambda e: e[1])


def hostbind_tag(layout: list[tuple[str, str, str | int]] | None = None) -> str:
    """``autorl-gym/hostbind:<hash of the layout>``."""
    blob = json.dumps([_LAYOUT_VERSION, layout or hostbind_layout()]).encode()
    return f"{HOSTBIND_REPOSITORY}:{hashlib.sha256(blob).hexdigest()[:12]}"


def _layout_tar(layout: list[tuple[str, str, str | int]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for kind, name, value in layout:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(value), 0o777
            else:
                info.type, info.mode = tarfile.DIRTYPE, int(value)
            tar.addfile(info)
    return out.getvalue()


def ensure_hostbind_image(client: Any, announce: bool = True) -> str:
    """The tag of the host-bound base image, imported now if the engine does not have it."""
    from docker.errors import DockerException, ImageNotFound

    layout = hostbind_layout()
    tag = hostbind_tag(layout)
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    except DockerException as e:
        raise SandboxUnavailable(f"the Docker engine cannot list images: {_short(e)}") from e
    if announce:
        log.warning("docker sandbox: building the local image %s (first use; an empty root "
                    "filesystem whose system folders are bound from this host)", tag)
    repo, _, version = tag.partition(":")
    try:
        client.api.import_image_from_data(_layout_tar(layout), repository=repo, tag=version)
        client.images.get(tag)
    except DockerException as e:
        raise SandboxUnavailable(f"could not create the docker image {tag}: {_short(e)}") from e
    return tag


def engine_init_binary() -> str:
    """The host's ``docker-init`` (tini), PID 1 of a host-bound container (reached through the
    read-only ``/usr``: the engine's own ``--init`` cannot mount it under a read-only bind)."""
    for name in ("docker-init", "tini"):
        found = shutil.which(name, path="/usr/bin:/usr/sbin:/usr/libexec/docker:/usr/local/bin")
        if found and found.startswith("/usr/"):
            return found
    raise SandboxUnavailable(
        "docker sandbox: no docker-init (tini) under /usr on this host; it ships with docker.io "
        "and docker-ce (apt-get install -y tini also provides one)"
    )
