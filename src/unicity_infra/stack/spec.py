"""ContainerSpec and friends: what one container of the stack is, as plain data.

The engine turns specs into Docker calls; compose export renders them as YAML.
Nothing here talks to Docker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

__all__ = [
    "LABEL_PREFIX",
    "LABEL_MANAGED",
    "LABEL_SERVICE",
    "LABEL_STACK",
    "LABEL_ROLE",
    "Condition",
    "HealthCheck",
    "PortBinding",
    "SecretFile",
    "VolumeMount",
    "ContainerSpec",
    "NetworkSpec",
    "VolumeSpec",
]

LABEL_PREFIX = "org.unicity.infra"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_SERVICE = f"{LABEL_PREFIX}.service"
LABEL_STACK = f"{LABEL_PREFIX}.stack"
LABEL_ROLE = f"{LABEL_PREFIX}.role"
LABEL_ENDPOINT = f"{LABEL_PREFIX}.endpoint"
LABEL_SPEC_HASH = f"{LABEL_PREFIX}.spec-hash"

DEFAULT_STACK = "default"


class Condition(str, Enum):
    """What a dependent container waits for, as in compose's ``depends_on``."""

    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED = "service_completed_successfully"


@dataclass(frozen=True)
class HealthCheck:
    """A Docker healthcheck; intervals in seconds."""

    test: tuple[str, ...]
    interval_s: float = 2.0
    timeout_s: float = 5.0
    retries: int = 3
    start_period_s: float = 5.0


@dataclass(frozen=True)
class PortBinding:
    """Publish ``container_port`` on ``host_ip:host_port``."""

    container_port: int
    host_port: int
    host_ip: str = "127.0.0.1"
    protocol: str = "tcp"


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted at ``target``."""

    volume: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class SecretFile:
    """A host file bind-mounted read-only under /run/secrets/NAME.

    Secrets travel as files so their values never appear in ``docker inspect``.
    """

    name: str
    source: Path

    @property
    def target(self) -> str:
        return f"/run/secrets/{self.name}"


@dataclass(frozen=True)
class NetworkSpec:
    """A Docker network; ``external`` networks are shared and never removed by ``down``."""

    name: str
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeSpec:
    """A named volume; ``wipe`` volumes hold state that ``down --wipe`` removes."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerSpec:
    """One container: image, command, environment, mounts, networks and readiness."""

    name: str
    service: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    secret_files: tuple[SecretFile, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    networks: tuple[str, ...] = ()
    network_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    health: HealthCheck | None = None
    depends_on: dict[str, Condition] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # "no" for one-shot containers that are awaited as completed.
    restart_policy: str = "unless-stopped"
    stop_timeout_s: int = 10
    hostname: str | None = None
    # Host name → IP address entries for /etc/hosts, as ``docker run --add-host``.
    extra_hosts: dict[str, str] = field(default_factory=dict)

    @property
    def primary_network(self) -> str | None:
        """The network the container is created on; the others are connected before start."""
        return self.networks[0] if self.networks else None
