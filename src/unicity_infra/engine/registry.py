"""Push the wrapper images to an image registry through the Docker Engine.

Credentials are never taken from flags: the docker SDK reads them from the
Docker configuration (``$DOCKER_CONFIG/config.json``, by default
``~/.docker/config.json``, with its credential helpers), as ``docker push`` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import docker
import docker.errors

from unicity_infra import __version__
from unicity_infra.engine.recipes.release import (
    DEFAULT_REPOSITORY,
    describe_push_failure,
    image_name,
    parse_registry,
    push_repository,
    tags_to_push,
)
from unicity_infra.errors import (
    DockerError,
    ImageNotFoundError,
    InfraError,
    SettingsError,
)
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import IMAGES, service_wrapper

__all__ = ["PushFailedError", "PushedImage", "push_images"]

logger = logging.getLogger(__name__)

OFFLINE_LABEL = "org.unicity.infra.offline"
# Layer states after which the Engine sends nothing more for that layer.
_LAYER_DONE = ("Pushed", "Layer already exists", "Mounted from")


class PushFailedError(DockerError):
    """A push to a registry failed; the message names the registry, the cause and what to do."""

    def __init__(self, ref: str, registry: str, engine_message: str) -> None:
        self.ref = ref
        self.registry = registry
        self.engine_message = engine_message
        advice = describe_push_failure(registry, engine_message)
        super().__init__(f"pushing {ref} to {registry} failed: {advice}. The Docker Engine said: {engine_message}")


@dataclass(frozen=True)
class PushedImage:
    """One tag pushed to the registry and the manifest digest the registry stored for it."""

    ref: str
    digest: str


@dataclass
class _PushState:
    """Layer states and manifest digest the Engine reported while pushing one tag."""

    layers: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    started: float = field(default_factory=time.monotonic)
    last_wait: float = 0.0


def push_images(
    services: Iterable[str],
    *,
    registry: str,
    repository: str = DEFAULT_REPOSITORY,
    allow_offline: bool = False,
    progress: Progress = SILENT,
) -> dict[str, list[PushedImage]]:
    """Tag each service's built image for REGISTRY and push its version and ``sha-`` tags; return what was pushed.

    The local image ``<repository>/<wrapper>:<version>`` must exist (built by
    ``images build``); its ``sha-*`` tags under the same name are pushed too.
    Every image is checked before anything is tagged or pushed. An image
    built offline, from the debootstrapped base and stand-ins, is refused
    unless ALLOW_OFFLINE, because it is not what the pinned upstream images
    make.

    Raises SettingsError for an invalid registry or repository,
    ImageNotFoundError when an image is not built, InfraError for a refused
    offline image, and PushFailedError when the registry rejects a push or
    cannot be reached.
    """
    registry = parse_registry(registry)
    services = list(services)
    unknown = [service for service in services if service not in IMAGES]
    if unknown:
        raise SettingsError("SERVICE", unknown[0], f"expected one of: {', '.join(IMAGES)}")
    client = _docker_client()
    plans = {service: _plan_push(client, service, registry=registry, repository=repository,
                                 allow_offline=allow_offline) for service in services}

    pushed: dict[str, list[PushedImage]] = {}
    for service, (source, target, tags) in plans.items():
        pushed[service] = [
            _push_tag(client, f"{source}:{tag}", target, tag, registry=registry, progress=progress) for tag in tags
        ]
    return pushed


def _plan_push(
    client: docker.DockerClient, service: str, *, registry: str, repository: str, allow_offline: bool
) -> tuple[str, str, list[str]]:
    """Return the local name, the registry repository and the tags to push for SERVICE, after checking the image."""
    wrapper = service_wrapper(service)
    source = image_name(repository, wrapper)
    target = push_repository(registry, repository, wrapper)
    ref = f"{source}:{__version__}"
    try:
        image = client.api.inspect_image(ref)
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFoundError(ref, f"build it first with 'unicity-infra images build {service}'") from exc
    except docker.errors.APIError as exc:
        raise DockerError(f"inspecting image {ref} failed: {exc}") from exc

    labels = (image.get("Config") or {}).get("Labels") or {}
    if labels.get(OFFLINE_LABEL) == "true" and not allow_offline:
        raise InfraError(
            f"not pushing {ref}: it was built offline, from the debootstrapped base and upstream stand-ins, not from "
            f"the pinned upstream images. Build it with 'unicity-infra images build {service}' where a registry is "
            f"reachable, or pass --allow-offline to push it anyway"
        )
    tags = tags_to_push(image.get("RepoTags") or [], repository=repository, service=wrapper, version=__version__)
    return source, target, tags


def _push_tag(
    client: docker.DockerClient, source: str, target: str, tag: str, *, registry: str, progress: Progress
) -> PushedImage:
    ref = f"{target}:{tag}"
    progress.stage(f"Pushing {ref}")
    progress.action(f"docker tag {source} {ref}")
    try:
        client.api.tag(source, target, tag, force=True)
    except docker.errors.APIError as exc:
        raise DockerError(f"tagging {source} as {ref} failed: {exc}") from exc

    progress.action(f"docker push {ref}")
    state = _PushState()
    try:
        for message in client.api.push(target, tag=tag, stream=True, decode=True):
            _follow_push_message(message, ref=ref, registry=registry, state=state, progress=progress)
    except (PushFailedError, docker.errors.DockerException) as exc:
        # A failed push leaves no registry tag behind, as if it had not started.
        _untag(client, ref)
        if isinstance(exc, PushFailedError):
            raise
        message = exc.explanation if isinstance(exc, docker.errors.APIError) and exc.explanation else exc
        raise PushFailedError(ref, registry, str(message)) from exc

    logger.info("pushed image=%s digest=%s layers=%d", ref, state.digest, len(state.layers))
    progress.note(f"pushed {ref} {state.digest}".rstrip())
    return PushedImage(ref=ref, digest=state.digest)


def _follow_push_message(
    message: Mapping[str, object], *, ref: str, registry: str, state: _PushState, progress: Progress
) -> None:
    """Report one message of the Engine's push stream; raise PushFailedError on an error message."""
    if "error" in message or "errorDetail" in message:
        detail = message.get("errorDetail")
        text = detail.get("message") if isinstance(detail, dict) else None
        raise PushFailedError(ref, registry, str(text or message.get("error") or message).strip())
    aux = message.get("aux")
    if isinstance(aux, dict) and aux.get("Digest"):
        state.digest = str(aux["Digest"])

    layer = message.get("id")
    status = str(message.get("status") or "")
    if not layer or not status or layer == ref.rpartition(":")[2]:
        return
    layer = str(layer)
    previous = state.layers.get(layer)
    state.layers[layer] = status
    if status.startswith(_LAYER_DONE):
        if previous is None or not previous.startswith(_LAYER_DONE):
            progress.note(f"layer {layer}: {status}")
        return
    now = time.monotonic()
    if now - state.last_wait >= 1.0:
        state.last_wait = now
        done = sum(1 for value in state.layers.values() if value.startswith(_LAYER_DONE))
        detail = str(message.get("progress") or "").strip()
        text = f"push of {ref}: layer {layer} {status} {detail}".rstrip()
        progress.wait(f"{text} ({done}/{len(state.layers)} layers done)", now - state.started)


def _untag(client: docker.DockerClient, ref: str) -> None:
    try:
        client.api.remove_image(ref, noprune=True)
    except docker.errors.APIError as exc:
        logger.warning("could not remove the tag %s after a failed push: %s", ref, exc)


def _docker_client() -> docker.DockerClient:
    try:
        return docker.from_env(version="auto")
    except docker.errors.DockerException as exc:
        raise DockerError(
            f"the Docker Engine is not reachable ({exc}); start dockerd or point DOCKER_HOST at a running engine"
        ) from exc
