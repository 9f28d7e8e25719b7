"""Apply container specs to the Docker Engine; the only module that drives containers.

It ensures networks and volumes, replaces only containers that carry our label,
creates each container on its primary network, connects the others before start,
waits for readiness, and finds exactly our resources again by label.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from unicity_infra.errors import (
    ContainerFailedError,
    DockerError,
    ImageNotFoundError,
    NotOursError,
)
from unicity_infra.progress import SILENT, Progress
from unicity_infra.stack.spec import (
    LABEL_MANAGED,
    LABEL_PREFIX,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_STACK,
    Condition,
    ContainerSpec,
    NetworkSpec,
    VolumeSpec,
)

__all__ = [
    "LABEL_DEPENDS_ON",
    "LOG_TAIL_LINES",
    "POLL_FALLBACK_S",
    "ContainerEvents",
    "ContainerInfo",
    "DockerEngine",
    "Readiness",
]

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
# Waits wake up on Docker's events and also inspect at least this often, in case the event stream fails.
POLL_FALLBACK_S = 1.0
# Label with a container's dependencies as "name=condition,...", so they can be read back
# from Docker (benchmarks/cold_start.py computes the critical path from them).
LABEL_DEPENDS_ON = f"{LABEL_PREFIX}.depends-on"
_NANOSECONDS = 1_000_000_000
# Docker's list summary states health and exit code only in its status text: "Up 5 seconds (healthy)",
# "Up 2 seconds (health: starting)", "Exited (137) 3 minutes ago", "Restarting (1) 2 seconds ago".
_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_IN_STATUS = re.compile(r"(?:Exited|Restarting) \((-?\d+)\)")


@dataclass(frozen=True)
class ContainerInfo:
    """The facts ``status`` shows about one of our containers."""

    name: str
    service: str
    stack: str
    image: str
    state: str
    health: str | None
    labels: dict[str, str]
    exit_code: int | None


@dataclass
class Readiness:
    """A container being awaited: its condition and what DockerEngine.is_ready compares between inspections."""

    name: str
    condition: Condition
    restarts_at_start: int
    started: float
    last_seen: str = field(default="created")

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


class ContainerEvents:
    """Wakes a waiter as soon as Docker reports an event (start, health, exit) of one of NAMES.

    A context manager: entering opens Docker's event stream and reads it in a
    thread, and leaving closes it. An event only triggers another inspection,
    so a lost stream delays a wait by at most POLL_FALLBACK_S.
    """

    def __init__(self, client: docker.DockerClient, names: Iterable[str]) -> None:
        self._client = client
        self._names = sorted(set(names))
        self._changed = threading.Event()
        self._stream: docker.types.CancellableStream | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        try:
            self._stream = self._client.events(decode=True, filters={"type": "container", "container": self._names})
        except (APIError, DockerException) as exc:
            logger.warning("opening the Docker event stream failed; polling instead error=%s", exc)
            return self
        self._thread = threading.Thread(target=self._read, name="docker-events", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def notify(self) -> None:
        """Wake the waiter as an event would, e.g. when a start call in another thread returns."""
        self._changed.set()

    def wait(self, timeout_s: float) -> bool:
        """Block until an event arrives or TIMEOUT_S pass; return whether one arrived."""
        arrived = self._changed.wait(timeout_s)
        self._changed.clear()
        return arrived

    def _read(self) -> None:
        assert self._stream is not None
        try:
            for event in self._stream:
                logger.debug("docker event %s %s", event.get("status"), event.get("Actor", {}).get("Attributes", {}).get("name"))
                self._changed.set()
        except Exception as exc:  # noqa: BLE001 - closing the stream ends the loop with an error of the transport
            logger.debug("docker event stream ended error=%s", exc)


def _managed(labels: dict[str, str] | None) -> bool:
    return bool(labels) and labels.get(LABEL_MANAGED) == "true"


class DockerEngine:
    """A thin adapter over the docker SDK that raises only our own errors."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        try:
            self.client = client or docker.from_env(version="auto")
            self.client.ping()
        except DockerException as exc:
            raise DockerError(
                f"cannot reach the Docker Engine ({exc}); start the daemon or set DOCKER_HOST"
            ) from exc
        self.api = self.client.api
        self._network_lock = threading.Lock()

    # Networks and volumes -------------------------------------------------

    def ensure_network(self, spec: NetworkSpec, *, progress: Progress = SILENT) -> None:
        """Create the network unless one of that name exists; a second call is a no-op.

        Docker accepts two networks of one name, after which every use of the name
        fails as ambiguous, so services started side by side create it one at a time.
        """
        with self._network_lock:
            try:
                self.client.networks.get(spec.name)
                return
            except NotFound:
                pass
            progress.action(f"docker network create {spec.name}")
            labels = {LABEL_MANAGED: "true", **spec.labels}
            if spec.external:
                # A shared edge network a service had to create: 'edge down' removes it once unused.
                labels.setdefault(LABEL_ROLE, "edge-network")
            try:
                self.client.networks.create(spec.name, driver="bridge", labels=labels, check_duplicate=True)
            except APIError as exc:
                if exc.status_code == 409:  # another process created it in the meantime
                    return
                raise DockerError(f"creating network {spec.name!r} failed: {exc.explanation}") from exc

    def ensure_volume(self, spec: VolumeSpec, *, progress: Progress = SILENT) -> None:
        """Create the volume unless it exists; refuse one of the same name that is not ours."""
        try:
            volume = self.client.volumes.get(spec.name)
        except NotFound:
            progress.action(f"docker volume create {spec.name}")
            self.client.volumes.create(spec.name, labels={LABEL_MANAGED: "true", **spec.labels})
            return
        if not _managed(volume.attrs.get("Labels")):
            raise NotOursError("volume", spec.name)

    def volume_exists(self, name: str) -> bool:
        try:
            self.client.volumes.get(name)
        except NotFound:
            return False
        return True

    # Containers -------------------------------------------------------------

    def image_exists(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except ImageNotFound:
            return False
        return True

    def image_id(self, image: str) -> str | None:
        try:
            return self.client.images.get(image).id
        except ImageNotFound:
            return None

    def container_snapshot(self, name: str) -> ContainerInfo | None:
        """Return NAME's labels and state, or None when no such container exists."""
        try:
            attrs = self.api.inspect_container(name)
        except NotFound:
            return None
        state = attrs["State"]
        labels = attrs["Config"]["Labels"] or {}
        return ContainerInfo(
            name=name,
            service=labels.get(LABEL_SERVICE, "?"),
            stack=labels.get(LABEL_STACK, "?"),
            image=attrs["Image"],
            state=state["Status"],
            health=(state.get("Health") or {}).get("Status"),
            labels=labels,
            exit_code=state.get("ExitCode"),
        )

    def image_labels(self, image: str) -> dict[str, str]:
        try:
            return self.client.images.get(image).labels or {}
        except ImageNotFound:
            return {}

    def remove_container(self, name: str, *, progress: Progress = SILENT) -> bool:
        """Stop and remove container NAME if it is ours; return whether one was removed.

        Raises NotOursError when a container of that name lacks our label.
        """
        try:
            container = self.client.containers.get(name)
        except NotFound:
            return False
        if not _managed(container.labels):
            raise NotOursError("container", name)

        progress.action(f"docker rm --force {name}")
        try:
            if container.status == "running":
                container.stop(timeout=int(container.labels.get("org.unicity.infra.stop-timeout", "10")))
            # v=True drops the anonymous volumes an image's VOLUME lines create;
            # named volumes are never touched by it.
            container.remove(force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            raise DockerError(f"removing container {name!r} failed: {exc.explanation}") from exc
        return True

    def create_and_start(self, spec: ContainerSpec, *, progress: Progress = SILENT) -> None:
        """Create SPEC on its primary network, connect the other networks, then start it.

        Connecting while the container is still stopped means every network's
        routes exist before the entrypoint runs; connecting after start races it.
        """
        if not self.image_exists(spec.image):
            raise ImageNotFoundError(
                spec.image,
                "build it with 'unicity-infra images build' (add --offline when no registry is reachable)",
            )
        self.remove_container(spec.name, progress=progress)

        progress.action(f"docker create --name {spec.name} --network {spec.primary_network} {spec.image}")
        try:
            created = self.api.create_container(**self._create_args(spec))
            for network in spec.networks[1:]:
                progress.action(f"docker network connect {network} {spec.name}")
                self.api.connect_container_to_network(
                    created["Id"], network, aliases=list(spec.network_aliases.get(network, ()))
                )
            progress.action(f"docker start {spec.name}")
            self.api.start(created["Id"])
        except APIError as exc:
            raise DockerError(f"starting container {spec.name!r} failed: {exc.explanation}") from exc
        logger.info("started container name=%s image=%s", spec.name, spec.image)

    def _create_args(self, spec: ContainerSpec) -> dict[str, object]:
        binds = [f"{mount.volume}:{mount.target}:{'ro' if mount.read_only else 'rw'}" for mount in spec.volumes]
        binds += [f"{secret.source}:{secret.target}:ro" for secret in spec.secret_files]
        port_bindings = {
            f"{port.container_port}/{port.protocol}": (port.host_ip, port.host_port) for port in spec.ports
        }
        host_config = self.api.create_host_config(
            binds=binds,
            port_bindings=port_bindings or None,
            restart_policy={"Name": spec.restart_policy} if spec.restart_policy != "no" else None,
            network_mode=spec.primary_network,
            extra_hosts=dict(spec.extra_hosts) or None,
        )
        networking_config = None
        if spec.primary_network:
            aliases = list(spec.network_aliases.get(spec.primary_network, ()))
            networking_config = self.api.create_networking_config(
                {spec.primary_network: self.api.create_endpoint_config(aliases=aliases or None)}
            )
        healthcheck = None
        if spec.health:
            healthcheck = {
                "test": ["CMD", *spec.health.test],
                "interval": int(spec.health.interval_s * _NANOSECONDS),
                "timeout": int(spec.health.timeout_s * _NANOSECONDS),
                "retries": spec.health.retries,
                "start_period": int(spec.health.start_period_s * _NANOSECONDS),
            }
        return {
            "image": spec.image,
            "command": list(spec.command) if spec.command else None,
            "entrypoint": list(spec.entrypoint) if spec.entrypoint else None,
            "user": spec.user,
            "name": spec.name,
            "hostname": spec.hostname,
            "environment": spec.env,
            "labels": {
                **spec.labels,
                "org.unicity.infra.stop-timeout": str(spec.stop_timeout_s),
                **({LABEL_DEPENDS_ON: ",".join(f"{name}={condition.value}" for name, condition in spec.depends_on.items())}
                   if spec.depends_on else {}),
            },
            "ports": [(port.container_port, port.protocol) for port in spec.ports] or None,
            "host_config": host_config,
            "networking_config": networking_config,
            "healthcheck": healthcheck,
            "stop_timeout": spec.stop_timeout_s,
            "detach": True,
        }

    def watch(self, names: Iterable[str]) -> ContainerEvents:
        """Return ContainerEvents for NAMES; open it (``with``) before starting them, so no event is missed."""
        return ContainerEvents(self.client, names)

    def wait_for(
        self,
        name: str,
        condition: Condition,
        *,
        timeout_s: float = 120.0,
        progress: Progress = SILENT,
    ) -> None:
        """Wait until container NAME meets CONDITION.

        Docker's events wake the wait at once when the container changes state;
        without them it polls every POLL_FALLBACK_S.
        Raises ContainerFailedError, carrying the last log lines, when the container
        exits (unless completion was awaited), restarts, turns unhealthy or times out.
        """
        with self.watch([name]) as events:
            readiness = self.track(name, condition)
            while not self.is_ready(readiness, timeout_s=timeout_s):
                progress.wait(f"{name}: {readiness.last_seen}", readiness.elapsed_s, timeout_s)
                events.wait(POLL_FALLBACK_S)

    def track(self, name: str, condition: Condition) -> Readiness:
        """Return the Readiness that tracks NAME until it meets CONDITION; restarts count from this call."""
        return Readiness(name, condition, restarts_at_start=self._inspect(name)["RestartCount"],
                         started=time.monotonic())

    def is_ready(self, readiness: Readiness, *, timeout_s: float) -> bool:
        """Inspect the container once and tell whether it meets its condition now.

        Raises ContainerFailedError, carrying the last log lines, when it exited
        (unless completion was awaited), restarted, turned unhealthy, or took
        longer than TIMEOUT_S since tracking began.
        """
        name, condition = readiness.name, readiness.condition
        attrs = self._inspect(name)
        state = attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        readiness.last_seen = health or state["Status"]

        if condition is Condition.COMPLETED and state["Status"] == "exited":
            if state["ExitCode"] == 0:
                return True
            self._fail(name, f"exited with status {state['ExitCode']}", state["ExitCode"])
        if state["Status"] in ("exited", "dead"):
            self._fail(name, f"exited with status {state['ExitCode']} before it became ready", state["ExitCode"])
        if attrs["RestartCount"] > readiness.restarts_at_start or state["Status"] == "restarting":
            # Docker resets State.ExitCode when it restarts the container, so the
            # status is in the log tail. A setup error (exit 10-14) would restart
            # forever; stopping keeps the logs for inspection and ends the loop.
            self._stop_quietly(name)
            self._fail(name, "exited before it became ready and Docker restarted it; it is now stopped so the "
                       "restart loop ends", None)
        if condition is Condition.STARTED and state["Status"] == "running":
            return True
        if condition is Condition.HEALTHY and health == "healthy":
            return True
        if condition is Condition.HEALTHY and health is None and state["Status"] == "running":
            # An image without a healthcheck can only be awaited as started.
            logger.warning("container has no healthcheck; treating running as ready name=%s", name)
            return True
        if health == "unhealthy":
            self._fail(name, "turned unhealthy before it became ready", None)
        if readiness.elapsed_s > timeout_s:
            self._fail(name, f"did not become {condition.name.lower()} within {timeout_s:.0f} s", None)
        return False

    def _inspect(self, name: str) -> dict:
        try:
            return self.api.inspect_container(name)
        except NotFound:
            raise ContainerFailedError(name, "disappeared while awaited (removed by someone else?)") from None

    def _stop_quietly(self, name: str) -> None:
        try:
            self.api.stop(name, timeout=5)
        except (NotFound, APIError) as exc:
            logger.warning("could not stop failed container name=%s error=%s", name, exc)

    def _fail(self, name: str, reason: str, exit_status: int | None) -> None:
        raise ContainerFailedError(name, reason, exit_status=exit_status, log_tail=self.log_tail(name))

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        """Return the last LINES lines of the container's stdout and stderr."""
        try:
            raw = self.api.logs(name, tail=lines, stdout=True, stderr=True)
        except (NotFound, APIError):
            return []
        return raw.decode("utf-8", "replace").splitlines()

    def stream_logs(self, name: str, *, tail: int | str = "all", follow: bool = False) -> Iterator[str]:
        try:
            for chunk in self.api.logs(name, stream=True, follow=follow, tail=tail, stdout=True, stderr=True):
                yield chunk.decode("utf-8", "replace")
        except NotFound:
            raise DockerError(f"no container named {name!r}; run 'unicity-infra status' to list ours") from None

    def read_file(self, name: str, path: str) -> bytes:
        """Return the content of the regular file PATH inside container NAME (following symlinks)."""
        return self.copy_file(name, path)[0]

    def copy_file(self, name: str, path: str) -> tuple[bytes, datetime]:
        """Return the content of the regular file PATH inside container NAME and when it was last modified (UTC).

        One archive request carries both. Each request took about 60 ms on this project's fuse-overlayfs test host.
        """
        try:
            stream, _ = self.api.get_archive(name, path)
        except NotFound:
            raise DockerError(f"file {path} not found in container {name!r}") from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.getmembers()[0]
            extracted = archive.extractfile(member)
            if extracted is None:
                raise DockerError(f"{path} in container {name!r} is not a regular file")
            return extracted.read(), datetime.fromtimestamp(member.mtime, tz=UTC)

    def exec_output(self, name: str, command: list[str]) -> tuple[int, str]:
        """Run COMMAND in container NAME and return its exit code and combined output."""
        try:
            result = self.client.containers.get(name).exec_run(command)
        except (NotFound, APIError) as exc:
            raise DockerError(f"running {command[0]} in container {name!r} failed: {exc}") from exc
        return result.exit_code, result.output.decode("utf-8", "replace")

    # Discovery and teardown ---------------------------------------------------

    def list_containers(self, *, stack: str | None = None, service: str | None = None) -> list[ContainerInfo]:
        """List our containers, optionally only those of STACK or SERVICE."""
        filters = [f"{LABEL_MANAGED}=true"]
        if stack:
            filters.append(f"{LABEL_STACK}={stack}")
        if service:
            filters.append(f"{LABEL_SERVICE}={service}")
        # One request: Docker's list summary carries the labels, and its status text the health and exit code,
        # so no container is inspected, and none removed meanwhile can fail the listing.
        found = []
        for summary in self.api.containers(all=True, filters={"label": filters}):
            labels = summary.get("Labels") or {}
            status = summary.get("Status") or ""
            health = _HEALTH_IN_STATUS.search(status)
            exited = _EXIT_IN_STATUS.match(status)
            found.append(
                ContainerInfo(
                    name=(summary.get("Names") or ["/?"])[0].lstrip("/"),
                    service=labels.get(LABEL_SERVICE, "?"),
                    stack=labels.get(LABEL_STACK, "?"),
                    image=summary.get("Image", "?"),
                    state=summary.get("State", "?"),
                    health=health.group(1).removeprefix("health: ") if health else None,
                    labels=labels,
                    exit_code=int(exited.group(1)) if exited else None,
                )
            )
        return sorted(found, key=lambda info: info.name)

    def published_ports(self, *, stack: str) -> set[int]:
        """Return the host ports that STACK's running containers publish."""
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_STACK}={stack}"], "status": "running"}
        return {port["PublicPort"] for summary in self.api.containers(filters=filters)
                for port in summary.get("Ports") or [] if port.get("PublicPort")}

    def list_volumes(self, *, stack: str | None = None, service: str | None = None,
                     role: str | None = None) -> list[str]:
        filters = [f"{LABEL_MANAGED}=true"]
        for key, value in ((LABEL_STACK, stack), (LABEL_SERVICE, service), (LABEL_ROLE, role)):
            if value:
                filters.append(f"{key}={value}")
        return sorted(volume.name for volume in self.client.volumes.list(filters={"label": filters}))

    def volume_labels(self, name: str) -> dict[str, str]:
        try:
            return self.client.volumes.get(name).attrs.get("Labels") or {}
        except NotFound:
            return {}

    def create_volume(self, name: str, *, labels: dict[str, str]) -> None:
        self.client.volumes.create(name, labels=labels)

    def _volume_holder(self, volume: str, *, image: str, mount_point: str) -> str:
        """Create, without starting, a container that mounts VOLUME at MOUNT_POINT; return its id."""
        created = self.api.create_container(
            image=image,
            entrypoint=["true"],
            labels={LABEL_MANAGED: "true", "org.unicity.infra.role": "volume-holder"},
            host_config=self.api.create_host_config(binds=[f"{volume}:{mount_point}:rw"]),
            network_disabled=True,
        )
        return created["Id"]

    def export_volume(self, volume: str, *, image: str, mount_point: str) -> Iterator[bytes]:
        """Yield a tar stream of VOLUME's content, whose top directory is MOUNT_POINT's name."""
        holder = self._volume_holder(volume, image=image, mount_point=mount_point)
        try:
            stream, _ = self.api.get_archive(holder, mount_point)
            yield from stream
        finally:
            self.api.remove_container(holder, force=True, v=True)

    def import_volume(self, volume: str, archive: bytes, *, image: str, mount_point: str) -> None:
        """Unpack ARCHIVE (as made by export_volume) into VOLUME, keeping owners and modes."""
        holder = self._volume_holder(volume, image=image, mount_point=mount_point)
        try:
            # The archive's top directory is the mount point's name, so it unpacks into its parent.
            if not self.api.put_archive(holder, posixpath.dirname(mount_point.rstrip("/")) or "/", archive):
                raise DockerError(f"unpacking the archive into volume {volume!r} failed; check that the snapshot archive is intact")
        finally:
            self.api.remove_container(holder, force=True, v=True)

    def remove_volume(self, name: str, *, progress: Progress = SILENT) -> None:
        progress.action(f"docker volume rm {name}")
        try:
            self.client.volumes.get(name).remove()
        except NotFound:
            return
        except APIError as exc:
            raise DockerError(
                f"removing volume {name!r} failed: {exc.explanation}; a container still uses it"
            ) from exc

    def list_networks(self, *, stack: str | None = None) -> list[str]:
        filters = [f"{LABEL_MANAGED}=true"]
        if stack:
            filters.append(f"{LABEL_STACK}={stack}")
        return sorted(network.name for network in self.client.networks.list(filters={"label": filters}))

    def remove_network(self, name: str, *, progress: Progress = SILENT) -> bool:
        """Remove network NAME unless containers still use it; return whether it was removed."""
        try:
            network = self.client.networks.get(name)
            network.reload()
        except NotFound:
            return False
        if network.attrs.get("Containers"):
            logger.info("keeping network still in use name=%s", name)
            return False
        progress.action(f"docker network rm {name}")
        try:
            network.remove()
        except APIError as exc:
            logger.warning("could not remove network name=%s error=%s", name, exc.explanation)
            return False
        return True

    def network_role(self, name: str) -> str | None:
        """Return the role label of our network NAME, or None."""
        try:
            labels = self.client.networks.get(name).attrs.get("Labels") or {}
        except NotFound:
            return None
        return labels.get(LABEL_ROLE) if _managed(labels) else None

    def container_address(self, name: str, network: str) -> str | None:
        """Return the IPv4 address of container NAME on NETWORK, or None."""
        try:
            attrs = self.api.inspect_container(name)
        except NotFound:
            return None
        endpoint = attrs["NetworkSettings"]["Networks"].get(network) or {}
        return endpoint.get("IPAddress") or None

    def container_networks(self, name: str) -> list[str]:
        """Return the networks running container NAME is attached to; empty when it is not running."""
        try:
            attrs = self.api.inspect_container(name)
        except NotFound:
            return []
        if attrs["State"]["Status"] != "running":
            return []
        return sorted(attrs["NetworkSettings"]["Networks"])

    def find_by_alias(self, network: str, alias: str) -> str | None:
        """Return the name of the running container reachable as ALIAS on NETWORK, or None."""
        try:
            attached = self.client.networks.get(network).attrs.get("Containers") or {}
        except NotFound:
            return None
        for container_id in attached:
            attrs = self.api.inspect_container(container_id)
            endpoint = attrs["NetworkSettings"]["Networks"].get(network) or {}
            names = {attrs["Name"].lstrip("/"), attrs["Config"]["Hostname"], *(endpoint.get("Aliases") or [])}
            if alias in names and attrs["State"]["Status"] == "running":
                return attrs["Name"].lstrip("/")
        return None

    def container_labels(self, name: str) -> dict[str, str]:
        try:
            return self.api.inspect_container(name)["Config"]["Labels"] or {}
        except NotFound:
            return {}

    def network_has_alias(self, network: str, alias: str) -> bool:
        """Return whether a running container on NETWORK is reachable as ALIAS (name or network alias)."""
        return self.find_by_alias(network, alias) is not None
