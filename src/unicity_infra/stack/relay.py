"""The relay service as specs: one wrapper container, its data and certificate volumes."""

from __future__ import annotations

from unicity_infra.settings import CONTAINER_HTTP_PORT, RunSettings
from unicity_infra.stack.plan import StackPlan, common_labels, direct_network_name, secret_files, wrapper_env
from unicity_infra.stack.spec import (
    LABEL_ENDPOINT,
    LABEL_ROLE,
    ContainerSpec,
    NetworkSpec,
    PortBinding,
    VolumeMount,
    VolumeSpec,
)

__all__ = ["relay_plan", "relay_endpoint", "RELAY_DATA_DIR"]

RELAY_DATA_DIR = "/var/lib/relay"
CERTIFICATE_DIR = "/etc/letsencrypt"


def relay_endpoint(settings: RunSettings) -> str:
    """Return the URL clients use, e.g. ``wss://relay.example.org`` or ``ws://127.0.0.1:7777``."""
    if settings.publish and not settings.uses_haproxy:
        scheme = "wss" if settings.tls_enabled else "ws"
        host = settings.domain if settings.tls_enabled else settings.publish.host
        port = settings.publish.port
        return f"{scheme}://{host}:{port}" if not (scheme == "wss" and port == 443) else f"wss://{host}"
    if settings.tls_enabled:
        suffix = "" if settings.https_port == 443 else f":{settings.https_port}"
        return f"wss://{settings.domain}{suffix}"
    if settings.publish:
        return f"ws://{settings.publish.host}:{settings.publish.port}"
    return f"ws://{settings.container_name}:{CONTAINER_HTTP_PORT}"


def relay_plan(settings: RunSettings, *, stack: str) -> StackPlan:
    """Turn validated run settings into the relay's container, network and volume specs."""
    labels = common_labels(stack=stack, service="relay")
    data_volume = f"{settings.container_name}-data"
    cert_volume = f"{settings.container_name}-letsencrypt"

    env = wrapper_env(settings)
    env.update({
        "RELAY_DATA_DIR": RELAY_DATA_DIR,
        "RELAY_URL": relay_endpoint(settings),
    })

    networks: list[NetworkSpec] = []
    if settings.uses_haproxy:
        networks.append(NetworkSpec(settings.haproxy_net, external=True))
    else:
        networks.append(NetworkSpec(direct_network_name(stack), labels=labels))

    ports: tuple[PortBinding, ...] = ()
    if settings.publish:
        ports = (PortBinding(settings.front_port, settings.publish.port, settings.publish.host),)

    container = ContainerSpec(
        name=settings.container_name,
        service="relay",
        image=settings.image,
        env=env,
        secret_files=secret_files(settings),
        ports=ports,
        volumes=(
            VolumeMount(data_volume, RELAY_DATA_DIR),
            VolumeMount(cert_volume, CERTIFICATE_DIR),
        ),
        networks=tuple(network.name for network in networks),
        labels={**labels, LABEL_ENDPOINT: relay_endpoint(settings)},
        hostname=settings.container_name,
    )
    volumes = [
        VolumeSpec(data_volume, labels={**labels, LABEL_ROLE: "data"}),
        VolumeSpec(cert_volume, labels={**labels, LABEL_ROLE: "certificates"}),
    ]
    return StackPlan(containers=[container], networks=networks, volumes=volumes)

