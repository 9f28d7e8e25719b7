"""The local edge as specs: one container with HAProxy, the registration API and Pebble.

It joins the shared edge network under the alias services expect in production
(``haproxy`` on ``haproxy-net``, API on 8404), so ``run`` needs no edge flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unicity_infra.settings import DEFAULT_HAPROXY_API_PORT, DEFAULT_HAPROXY_HOST, DEFAULT_HAPROXY_NET, wrapper_image
from unicity_infra.stack.plan import StackPlan, common_labels, default_container_name
from unicity_infra.stack.spec import (
    LABEL_ENDPOINT,
    LABEL_PREFIX,
    LABEL_ROLE,
    ContainerSpec,
    NetworkSpec,
    PortBinding,
    SecretFile,
    VolumeMount,
    VolumeSpec,
)

__all__ = [
    "EdgeSettings",
    "edge_plan",
    "edge_container_name",
    "EDGE_STATE_DIR",
    "EDGE_API_KEY_SECRET",
    "LABEL_EDGE_ALIAS",
    "LABEL_EDGE_API",
    "LABEL_EDGE_HTTP",
    "LABEL_EDGE_KEY_FILE",
    "LABEL_EDGE_KEY_REQUIRED",
    "ROLE_EDGE_NETWORK",
    "ROLE_EDGE_STATE",
]

EDGE_STATE_DIR = "/var/lib/unicity-edge"
EDGE_API_KEY_SECRET = "edge_api_key"
ROLE_EDGE_NETWORK = "edge-network"
ROLE_EDGE_STATE = "edge-state"
LABEL_EDGE_ALIAS = f"{LABEL_PREFIX}.edge.alias"
LABEL_EDGE_API = f"{LABEL_PREFIX}.edge.api"
LABEL_EDGE_HTTP = f"{LABEL_PREFIX}.edge.http"
LABEL_EDGE_KEY_REQUIRED = f"{LABEL_PREFIX}.edge.key-required"
# The host path of the key file (never the key), so 'edge status' names the file the edge reads.
LABEL_EDGE_KEY_FILE = f"{LABEL_PREFIX}.edge.key-file"


@dataclass(frozen=True)
class EdgeSettings:
    """Validated options of ``edge up``; ports are host ports on ``publish_host``."""

    network: str = DEFAULT_HAPROXY_NET
    alias: str = DEFAULT_HAPROXY_HOST
    publish_host: str = "127.0.0.1"
    http_port: int = 80
    https_port: int = 443
    api_port: int = DEFAULT_HAPROXY_API_PORT
    image: str = wrapper_image("edge")
    api_key_file: Path | None = None
    local_ca: bool = True
    certificate_validity_s: int | None = None


def edge_container_name(stack: str) -> str:
    return default_container_name(stack, "edge")


def edge_plan(settings: EdgeSettings, *, stack: str) -> StackPlan:
    """Return the edge's container, its shared network and its state volume."""
    labels = common_labels(stack=stack, service="edge")
    name = edge_container_name(stack)
    state_volume = f"{name}-state"

    env = {"EDGE_ALIASES": settings.alias, "EDGE_LOCAL_CA": "true" if settings.local_ca else "false"}
    secrets: tuple[SecretFile, ...] = ()
    if settings.api_key_file:
        secrets = (SecretFile(EDGE_API_KEY_SECRET, settings.api_key_file),)
        env["EDGE_API_KEY_FILE"] = secrets[0].target
    if settings.certificate_validity_s:
        env["EDGE_CERTIFICATE_VALIDITY_S"] = str(settings.certificate_validity_s)

    container = ContainerSpec(
        name=name,
        service="edge",
        image=settings.image,
        env=env,
        secret_files=secrets,
        ports=(
            PortBinding(80, settings.http_port, settings.publish_host),
            PortBinding(443, settings.https_port, settings.publish_host),
            PortBinding(DEFAULT_HAPROXY_API_PORT, settings.api_port, settings.publish_host),
        ),
        volumes=(VolumeMount(state_volume, EDGE_STATE_DIR),),
        networks=(settings.network,),
        network_aliases={settings.network: (settings.alias,)},
        labels={
            **labels,
            LABEL_ENDPOINT: f"https://{settings.publish_host}:{settings.https_port}",
            LABEL_EDGE_API: f"http://{settings.publish_host}:{settings.api_port}",
            LABEL_EDGE_HTTP: f"http://{settings.publish_host}:{settings.http_port}",
            LABEL_EDGE_KEY_REQUIRED: "true" if settings.api_key_file else "false",
            **({LABEL_EDGE_KEY_FILE: str(settings.api_key_file)} if settings.api_key_file else {}),
            LABEL_EDGE_ALIAS: settings.alias,
        },
        hostname=name,
    )
    # The shared network carries no stack label: a stack's 'down' never removes it,
    # and services of any stack can join it.
    network = NetworkSpec(settings.network, labels={LABEL_ROLE: ROLE_EDGE_NETWORK})
    volume = VolumeSpec(state_volume, labels={**labels, LABEL_ROLE: ROLE_EDGE_STATE})
    return StackPlan(containers=[container], networks=[network], volumes=[volume])
