"""``autorl-gym image build [train|eval|hostbind]``: the docker images, built where they can be.

* ``train`` (``docker/train.Dockerfile``): the agent's sandbox on GPU machines, CUDA PyTorch with
  transformers, peft, trl and vllm. Use it with ``sandbox: {image: autorl-gym/train:latest}`` or
  ``AUTORL_GYM_DOCKER_IMAGE=autorl-gym/train:latest``.
* ``eval`` (``docker/eval.Dockerfile``): the grader on GPU machines, lm-eval with vllm and this
  package (``docker run --gpus device=1 autorl-gym/eval eval MODEL --env ...``).
* ``hostbind``: the minimal local image the docker sandbox uses by default (no registry needed;
  also built on first use).

``train`` and ``eval`` start from a CUDA base image. Unless the engine already has it, its
registry is probed first with a short timeout, so a machine without registry access (such as the
one this package is tested on, where only package indexes are reachable) gets a clear error at
once instead of a hanging build.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.core.paths import REPO_DIR
from autorl_gym.core.sandbox import SandboxUnavailable
from autorl_gym.sandbox.docker.engine import docker_client, ensure_hostbind_image

__all__ = [
    "IMAGES",
    "ImageBuildError",
    "base_images",
    "build_image",
    "probe_registry",
    "registry_host",
]

DOCKER_DIR = REPO_DIR / "docker"
PROBE_TIMEOUT_S = 3.0


class ImageSpec(BaseModel):
    dockerfile: str
    tag: str
    context: str = "."  # relative to the repository


IMAGES: dict[str, ImageSpec] = {
    "train": ImageSpec(dockerfile="docker/train.Dockerfile", tag="autorl-gym/train:latest",
                       context="docker"),
    "eval": ImageSpec(dockerfile="docker/eval.Dockerfile", tag="autorl-gym/eval:latest"),
}
TARGETS = (*IMAGES, "hostbind")


class ImageBuildError(RuntimeError):
    """The image cannot be built here; the message says why and what to do."""


def base_images(dockerfile: Path) -> list[str]:
    """The images named in ``FROM`` lines, ``ARG`` defaults substituted."""
    args: dict[str, str] = {}
    out: list[str] = []
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if m := re.match(r"(?i)^ARG\s+(\w+)=(\S+)", line):
            args[m.group(1)] = m.group(2).strip('"')
        elif m := re.match(r"(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)", line):
            image = re.sub(r"\$\{?(\w+)\}?", lambda a: args.get(a.group(1), ""), m.group(1))
            if image and image.lower() != "scratch":
                out.append(image)
    return out


def registry_host(image: str) -> str:
    """The registry an image reference is pulled from (Docker Hub's for short names)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "registry-1.docker.io"


def probe_registry(host: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None if ``https://HOST/v2/`` answers at all (401 included) within the timeout, else why."""
    import httpx

    try:
        httpx.get(f"https://{host}/v2/", timeout=timeout_s)
    except httpx.HTTPError as e:
        return f"{e.__class__.__name__}: {str(e)[:200] or 'no answer'}"
    return None


def build_image(target: str, tag: str | None = None, probe_timeout_s: float = PROBE_TIMEOUT_S,
                log: Callable[[str], None] = print) -> str:
    """Build ``target`` (train, eval or hostbind); returns its tag. ImageBuildError when it
    cannot be built here."""
    if target not in TARGETS:
        raise ImageBuildError(f"unknown image {target!r}; choose one of {', '.join(TARGETS)}")
    try:
        client = docker_client()
    except SandboxUnavailable as e:
        raise ImageBuildError(str(e)) from e
    if target == "hostbind":
        return ensure_hostbind_image(client)
    spec = IMAGES[target]
    dockerfile = REPO_DIR / spec.dockerfile
    if not dockerfile.is_file():
        raise ImageBuildError(f"{spec.dockerfile} is not here ({dockerfile}): the Dockerfiles ship "
                              "in the repository's docker/ folder; run from a checkout")
    from docker.errors import DockerException, ImageNotFound

    for base in base_images(dockerfile):
        try:
            client.images.get(base)
            continue
        except ImageNotFound:
            pass
        host = registry_host(base)
        why = probe_registry(host, probe_timeout_s)
        if why is not None:
            raise ImageBuildError(
                f"cannot build {target}: its base image {base} is not on this engine and the "
                f"registry {host} is not reachable from here ({why}; probed for "
                f"{probe_timeout_s:g} s). Build it on a machine that reaches {host}, or "
                f"`docker load` the base image here first."
            )
    tag = tag or spec.tag
    log(f"building {tag} from {spec.dockerfile} (network: host, for the base image and pip)")
    try:
        for chunk in client.api.build(path=str(REPO_DIR / spec.context),
                                      dockerfile=str(dockerfile), tag=tag, rm=True,
                                      network_mode="host", decode=True):
            if "error" in chunk:
                raise ImageBuildError(f"building {tag} failed: {chunk['error'].strip()}")
            text = (chunk.get("stream") or chunk.get("status") or "").rstrip()
            if text:
                log(text)
    except DockerException as e:
        raise ImageBuildError(f"building {tag} failed: {e}") from e
    return tag
