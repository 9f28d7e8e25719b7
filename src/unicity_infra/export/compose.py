"""The exported stack as a compose file, for ``docker-compose`` or ``docker compose``.

Each container spec becomes one compose service under the same container
name, so ``status``, ``logs`` and ``down`` of this tool see the containers
compose starts. Secrets stay files: compose mounts them under /run/secrets/
as ``run`` does. Every ``$`` is written as ``$$``, because compose would
otherwise substitute it from the shell environment.
"""

from __future__ import annotations

from typing import Any

from unicity_infra import __version__
from unicity_infra.errors import SettingsError
from unicity_infra.export.stack import EDGE, ExportedStack
from unicity_infra.export.yaml_text import dump_document, escape_dollars
from unicity_infra.stack.aggregator import LABEL_COMPONENT
from unicity_infra.stack.spec import (
    Condition,
    ContainerSpec,
    HealthCheck,
    NetworkSpec,
    PortBinding,
)

__all__ = ["compose_document", "render_compose", "service_key"]

STOP_TIMEOUT_LABEL = "org.unicity.infra.stop-timeout"


def service_key(spec: ContainerSpec) -> str:
    """Return the compose service name of SPEC: its aggregator component, else its service (``relay``)."""
    return spec.labels.get(LABEL_COMPONENT, spec.service)


def compose_document(exported: ExportedStack) -> dict[str, Any]:
    """Return the compose file of EXPORTED as a mapping, ``$`` already escaped.

    Raises SettingsError when two secrets of one name point at different files.
    """
    keys = {spec.name: service_key(spec) for plan in exported.plans.values() for spec in plan.containers}
    edge_aliases = _edge_aliases(exported)

    services: dict[str, Any] = {}
    for service, plan in exported.plans.items():
        front = exported.front(service)
        for spec in plan.containers:
            depends_on = {keys[name]: condition for name, condition in spec.depends_on.items()}
            if spec is front:
                depends_on.update({keys[exported.front(other).name]: Condition.HEALTHY
                                   for other in exported.needs(service)})
            aliases = edge_aliases if service == EDGE else {}
            services[keys[spec.name]] = _service(spec, depends_on=depends_on, extra_aliases=aliases)

    document: dict[str, Any] = {"services": services}
    document["networks"] = {network.name: _network(network) for network in _merged_networks(exported)}
    volumes = {volume.name: volume for plan in exported.plans.values() for volume in plan.volumes}
    if volumes:
        document["volumes"] = {name: {"name": name, "labels": dict(volume.labels)} for name, volume in volumes.items()}
    secrets = _secrets(exported)
    if secrets:
        document["secrets"] = secrets
    return escape_dollars(document)


def render_compose(exported: ExportedStack, *, command: str) -> str:
    """Return the compose file of EXPORTED as YAML text; COMMAND is named in its header."""
    header = (
        f"# Written by unicity-infra {__version__}: {command}\n"
        "# Start: docker-compose -f FILE up -d    Remove: docker-compose -f FILE down\n"
        "# Services without a healthcheck here use the HEALTHCHECK built into their image.\n"
        "# Secrets are read from the files named under 'secrets'; '$$' is compose's literal '$'.\n"
    )
    return dump_document(compose_document(exported), header=header)


def _service(spec: ContainerSpec, *, depends_on: dict[str, Condition],
             extra_aliases: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": spec.image, "container_name": spec.name}
    if spec.hostname:
        entry["hostname"] = spec.hostname
    if spec.entrypoint is not None:
        entry["entrypoint"] = list(spec.entrypoint)
    if spec.command is not None:
        entry["command"] = list(spec.command)
    if spec.user:
        entry["user"] = spec.user
    if spec.env:
        entry["environment"] = dict(spec.env)
    if spec.secret_files:
        entry["secrets"] = [secret.name for secret in spec.secret_files]
    if spec.ports:
        entry["ports"] = [_port(port) for port in spec.ports]
    if spec.volumes:
        entry["volumes"] = [f"{mount.volume}:{mount.target}" + (":ro" if mount.read_only else "")
                            for mount in spec.volumes]
    entry["networks"] = _service_networks(spec, extra_aliases)
    if spec.extra_hosts:
        entry["extra_hosts"] = [f"{host}:{address}" for host, address in spec.extra_hosts.items()]
    if spec.health:
        entry["healthcheck"] = _healthcheck(spec.health)
    if depends_on:
        entry["depends_on"] = {key: {"condition": condition.value} for key, condition in depends_on.items()}
    entry["restart"] = spec.restart_policy
    entry["stop_grace_period"] = f"{spec.stop_timeout_s}s"
    entry["labels"] = {**spec.labels, STOP_TIMEOUT_LABEL: str(spec.stop_timeout_s)}
    return entry


def _port(port: PortBinding) -> str:
    host = f"[{port.host_ip}]" if ":" in port.host_ip else port.host_ip
    return f"{host}:{port.host_port}:{port.container_port}/{port.protocol}"


def _service_networks(spec: ContainerSpec, extra_aliases: dict[str, tuple[str, ...]]) -> Any:
    aliases = {network: (*spec.network_aliases.get(network, ()), *extra_aliases.get(network, ()))
               for network in spec.networks}
    if not any(aliases.values()):
        return list(spec.networks)
    return {network: {"aliases": list(names)} if names else {} for network, names in aliases.items()}


def _healthcheck(health: HealthCheck) -> dict[str, Any]:
    return {
        "test": ["CMD", *health.test],
        "interval": _duration(health.interval_s),
        "timeout": _duration(health.timeout_s),
        "retries": health.retries,
        "start_period": _duration(health.start_period_s),
    }


def _duration(seconds: float) -> str:
    """Return SECONDS in compose's duration syntax.

    >>> _duration(2.0), _duration(0.5)
    ('2s', '500ms')
    """
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _edge_aliases(exported: ExportedStack) -> dict[str, tuple[str, ...]]:
    """Return the service domains that resolve to the local edge on its network.

    ``run`` maps each service's domain to the edge's address in /etc/hosts.
    That address is known only once the edge runs, so the compose file gives
    the edge these names as network aliases instead.
    """
    if EDGE not in exported.plans:
        return {}
    edge = exported.front(EDGE)
    domains: list[str] = []
    for service, plan in exported.plans.items():
        for spec in plan.containers:
            if service == EDGE or "HAPROXY_HOST" not in spec.env or not spec.env.get("SSL_DOMAIN"):
                continue
            names = [spec.env["SSL_DOMAIN"], *filter(None, spec.env.get("SSL_DOMAIN_ALIASES", "").split(","))]
            domains += [name for name in names if name not in domains]
    return {edge.networks[0]: tuple(domains)} if domains else {}


def _merged_networks(exported: ExportedStack) -> list[NetworkSpec]:
    """Return each network once; one that a service of the file creates (the edge's) is not external."""
    merged: dict[str, NetworkSpec] = {}
    for plan in exported.plans.values():
        for network in plan.networks:
            known = merged.get(network.name)
            if known is None or (known.external and not network.external):
                merged[network.name] = network
    return list(merged.values())


def _network(network: NetworkSpec) -> dict[str, Any]:
    if network.external:
        return {"name": network.name, "external": True}
    return {"name": network.name, "labels": dict(network.labels)}


def _secrets(exported: ExportedStack) -> dict[str, Any]:
    secrets: dict[str, Any] = {}
    for plan in exported.plans.values():
        for spec in plan.containers:
            for secret in spec.secret_files:
                source = str(secret.source.absolute())
                known = secrets.get(secret.name)
                if known is not None and known["file"] != source:
                    raise SettingsError("secret", secret.name, f"it is read from both {known['file']} and {source}; "
                                        "give every service the same file")
                secrets[secret.name] = {"file": source}
    return secrets
