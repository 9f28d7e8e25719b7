"""The exported stack as Kubernetes manifests: workloads, Services and PersistentVolumeClaims.

The translation follows a few rules, each derived from the specs:

- every long-running container becomes a single-replica workload of the same
  name: a StatefulSet when it writes a data or genesis volume, else a
  Deployment. A Service of that name keeps the host names the containers
  use for each other (``unicity-aggregator-mongodb`` …);
- one-shot steps (genesis, configuration upload) become init containers of
  the first workload that waits for them, so each runs once per start;
- health checks become startup, readiness and liveness probes that run the
  same command; the wrapper images' own HEALTHCHECK is written out, because
  Kubernetes ignores the one in an image;
- secrets are files from a Secret the operator creates, never values;
- in production mode, each TLS service gets a LoadBalancer Service that
  passes ports 80 and 443 through as TCP, because the containers answer
  HTTP-01 and terminate TLS themselves.
"""

from __future__ import annotations

import math
import re
from typing import Any

from unicity_infra import __version__
from unicity_infra.errors import SettingsError
from unicity_infra.export.compose import service_key
from unicity_infra.export.stack import ExportedStack
from unicity_infra.export.yaml_text import dump_documents, escape_dollars
from unicity_infra.settings import CONTAINER_HTTP_PORT
from unicity_infra.stack.aggregator import (
    AGGREGATOR_PORT,
    BFT_P2P_PORT,
    BFT_RPC_PORT,
    MONGO_PORT,
)
from unicity_infra.stack.spec import LABEL_ROLE, ContainerSpec, HealthCheck, SecretFile

__all__ = [
    "STORAGE_REQUESTS",
    "WRAPPER_HEALTHCHECK",
    "kubernetes_files",
    "kubernetes_objects",
    "render_kubernetes",
    "secret_object_name",
]

# The HEALTHCHECK of the relay, faucet and aggregator-proxy Dockerfiles in
# engine/recipes/images (tests/unit/test_export_kubernetes.py compares them).
WRAPPER_HEALTHCHECK = HealthCheck(
    test=("python3", "-m", "unicity_infra.container.healthcheck"),
    interval_s=2.0,
    timeout_s=4.0,
    retries=3,
    start_period_s=10.0,
)
# Requested size of each claim, by the volume's role label; edit the manifests to change them.
STORAGE_REQUESTS = {"data": "10Gi", "genesis": "1Gi", "certificates": "1Gi"}
STATEFUL_ROLES = ("data", "genesis")
# Ports the upstream containers of the aggregator stack listen on, by component.
COMPONENT_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    "bft-root": (("p2p", BFT_P2P_PORT), ("rpc", BFT_RPC_PORT)),
    "mongodb": (("mongodb", MONGO_PORT),),
    "aggregator": (("http", AGGREGATOR_PORT),),
}
# Service names are DNS-1035 labels.
_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
SECRETS_VOLUME = "secrets"
SECRETS_DIR = "/run/secrets"


def secret_object_name(stack: str, secret: SecretFile) -> str:
    """Return the name of the Secret that contains SECRET's file.

    >>> secret_object_name("default", SecretFile("haproxy_api_key", Path("key")))
    'unicity-haproxy-api-key'
    """
    prefix = "unicity" if stack == "default" else f"unicity-{stack}"
    return f"{prefix}-{secret.name.lower().replace('_', '-')}"


def kubernetes_objects(exported: ExportedStack) -> list[dict[str, Any]]:
    """Return the manifests of EXPORTED in apply order: claims, then Services and workloads.

    Raises SettingsError when the stack name cannot name Kubernetes objects.
    """
    return [item for objects in _objects_by_service(exported).values() for item in objects]


def kubernetes_files(exported: ExportedStack, *, command: str) -> dict[str, str]:
    """Return one YAML file per exported service, by file name (``relay.yaml`` …)."""
    return {f"{service}.yaml": dump_documents(objects, header=_header(command))
            for service, objects in _objects_by_service(exported).items()}


def render_kubernetes(exported: ExportedStack, *, command: str) -> str:
    """Return every manifest of EXPORTED as one YAML stream."""
    return dump_documents(kubernetes_objects(exported), header=_header(command))


def _header(command: str) -> str:
    return (
        f"# Written by unicity-infra {__version__}: {command}\n"
        "# Apply with: kubectl apply -f FILE (see docs/kubernetes.md for the Secrets to create first)\n"
    )


def _objects_by_service(exported: ExportedStack) -> dict[str, list[dict[str, Any]]]:
    roles = {volume.name: volume.labels.get(LABEL_ROLE, "") for plan in exported.plans.values()
             for volume in plan.volumes}
    _check_names(exported, roles)
    one_shots = _assign_one_shots(exported)
    claim_owners: dict[str, dict[str, str]] = {}

    grouped: dict[str, list[dict[str, Any]]] = {}
    for service, plan in exported.plans.items():
        objects = [_claim(volume.name, role=roles[volume.name], labels=_labels(exported.stack, service, None))
                   for volume in plan.volumes]
        for spec in plan.containers:
            if spec.restart_policy == "no":
                continue
            selector = _selector(exported.stack, spec)
            init = one_shots.get(spec.name, [])
            objects += _services(exported, service, spec, selector)
            objects.append(_workload(exported.stack, service, spec, init, roles=roles, selector=selector,
                                     claim_owners=claim_owners))
        grouped[service] = objects
    return grouped


def _check_names(exported: ExportedStack, roles: dict[str, str]) -> None:
    names = [spec.name for plan in exported.plans.values() for spec in plan.containers] + list(roles)
    for name in names:
        if not _DNS_LABEL.match(name):
            raise SettingsError("--stack", exported.stack,
                                f"it makes {name!r}, which cannot name a Kubernetes object (lowercase letters, "
                                "digits and '-', at most 63 characters); choose a short stack name of lowercase "
                                "letters, digits and '-'")


def _assign_one_shots(exported: ExportedStack) -> dict[str, list[ContainerSpec]]:
    """Return, by workload, the one-shot steps it runs first as init containers, in start order.

    A step goes to the first workload that waits for it, directly or through
    other steps. Later workloads that wait for it find its results in the
    shared volume.
    """
    specs = {spec.name: spec for plan in exported.plans.values() for spec in plan.containers}
    order = list(specs)
    assigned: set[str] = set()
    result: dict[str, list[ContainerSpec]] = {}
    for spec in specs.values():
        if spec.restart_policy == "no":
            continue
        needed: set[str] = set()
        pending = list(spec.depends_on)
        while pending:
            name = pending.pop()
            if name in needed or specs[name].restart_policy != "no":
                continue
            needed.add(name)
            pending += list(specs[name].depends_on)
        steps = [specs[name] for name in order if name in needed and name not in assigned]
        assigned.update(step.name for step in steps)
        if steps:
            result[spec.name] = steps
    return result


def _labels(stack: str, service: str, component: str | None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/part-of": "unicity-infra",
        "app.kubernetes.io/managed-by": "unicity-infra",
        "app.kubernetes.io/instance": stack,
        "app.kubernetes.io/component": service,
    }
    if component:
        labels["app.kubernetes.io/name"] = component
    return labels


def _selector(stack: str, spec: ContainerSpec) -> dict[str, str]:
    return {"app.kubernetes.io/instance": stack, "app.kubernetes.io/name": service_key(spec)}


def _claim(name: str, *, role: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": STORAGE_REQUESTS.get(role, "1Gi")}},
        },
    }


def _is_wrapper(spec: ContainerSpec) -> bool:
    """Tell whether SPEC runs one of our wrapper images, which all read the ssl-manager variables."""
    return "SSL_HTTPS_PORT" in spec.env


def _health(spec: ContainerSpec) -> HealthCheck | None:
    return spec.health or (WRAPPER_HEALTHCHECK if _is_wrapper(spec) else None)


def _container_ports(spec: ContainerSpec) -> tuple[tuple[str, int], ...]:
    if _is_wrapper(spec):
        if spec.env.get("SSL_DOMAIN"):
            return (("http", CONTAINER_HTTP_PORT), ("https", int(spec.env["SSL_HTTPS_PORT"])))
        return (("http", CONTAINER_HTTP_PORT),)
    return COMPONENT_PORTS.get(service_key(spec), ())


def _services(exported: ExportedStack, service: str, spec: ContainerSpec,
              selector: dict[str, str]) -> list[dict[str, Any]]:
    ports = _container_ports(spec)
    if not ports:
        return []
    labels = _labels(exported.stack, service, service_key(spec))
    internal: dict[str, Any] = {
        "selector": selector,
        "ports": [{"name": name, "port": port, "targetPort": name, "protocol": "TCP"} for name, port in ports],
    }
    health = _health(spec)
    self_checking = bool(health and spec.name in " ".join(health.test))
    obtains_certificate = _is_wrapper(spec) and bool(spec.env.get("SSL_DOMAIN"))
    if self_checking or obtains_certificate:
        # The Service must route to the pod before the pod is ready: the health
        # check of MongoDB and of the BFT root connects through it, and a TLS
        # wrapper must answer HTTP-01 before it has its certificate and turns ready.
        internal["publishNotReadyAddresses"] = True
    objects = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": spec.name, "labels": labels},
                "spec": internal}]

    domains = [name for name in [spec.env.get("SSL_DOMAIN", ""), *spec.env.get("SSL_DOMAIN_ALIASES", "").split(",")]
               if name]
    if exported.mode == "production" and _is_wrapper(spec) and domains:
        objects.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": f"{spec.name}-public",
                "labels": labels,
                "annotations": {"org.unicity.infra/domains": ",".join(domains),
                                "org.unicity.infra/note": "TCP passthrough: the container answers HTTP-01 on 80 "
                                                          "and terminates TLS on 443; point the domains here"},
            },
            "spec": {
                "type": "LoadBalancer",
                "publishNotReadyAddresses": True,
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                          {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
            },
        })
    return objects


def _workload(stack: str, service: str, spec: ContainerSpec, init: list[ContainerSpec], *,
              roles: dict[str, str], selector: dict[str, str],
              claim_owners: dict[str, dict[str, str]]) -> dict[str, Any]:
    stateful = any(roles.get(mount.volume) in STATEFUL_ROLES and not mount.read_only for mount in spec.volumes)
    claims = [mount.volume for container in (*init, spec) for mount in container.volumes]
    volumes: list[dict[str, Any]] = [{"name": claim, "persistentVolumeClaim": {"claimName": claim}}
                                     for claim in dict.fromkeys(claims)]
    secrets = [secret for container in (*init, spec) for secret in container.secret_files]
    if secrets:
        volumes.append(_secrets_volume(stack, secrets))

    pod: dict[str, Any] = {}
    if init:
        pod["initContainers"] = [_container(step, probes=False) for step in init]
    pod["containers"] = [_container(spec, probes=True)]
    pod["volumes"] = volumes
    pod["terminationGracePeriodSeconds"] = spec.stop_timeout_s
    # A ReadWriteOnce claim another workload mounted first can only be mounted on that one's node.
    owners = [claim_owners[claim] for claim in dict.fromkeys(claims) if claim in claim_owners]
    for claim in claims:
        claim_owners.setdefault(claim, selector)
    if owners:
        pod["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": owner}, "topologyKey": "kubernetes.io/hostname"}
            for owner in [dict(item) for item in {tuple(owner.items()) for owner in owners}]
        ]}}

    labels = _labels(stack, service, service_key(spec))
    workload: dict[str, Any] = {"replicas": 1, "selector": {"matchLabels": selector}}
    if stateful:
        workload["serviceName"] = spec.name
    else:
        # Recreate, because a second pod cannot mount the ReadWriteOnce claims while the first still uses them.
        workload["strategy"] = {"type": "Recreate"}
    workload["template"] = {"metadata": {"labels": {**labels, **selector}}, "spec": pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet" if stateful else "Deployment",
        "metadata": {"name": spec.name, "labels": labels, "annotations": dict(spec.labels)},
        "spec": workload,
    }


def _secrets_volume(stack: str, secrets: list[SecretFile]) -> dict[str, Any]:
    unique = {secret.name: secret for secret in secrets}
    return {
        "name": SECRETS_VOLUME,
        "projected": {"sources": [
            {"secret": {"name": secret_object_name(stack, secret), "items": [{"key": name, "path": name}]}}
            for name, secret in unique.items()
        ]},
    }


def _container(spec: ContainerSpec, *, probes: bool) -> dict[str, Any]:
    # Kubernetes expands $(VAR) in command, args and env values and reads $$ as a
    # literal $, so doubling every $ keeps the scripts as written.
    container: dict[str, Any] = {"name": service_key(spec), "image": spec.image, "imagePullPolicy": "IfNotPresent"}
    if spec.entrypoint is not None:
        container["command"] = escape_dollars(list(spec.entrypoint))
    if spec.command is not None:
        container["args"] = escape_dollars(list(spec.command))
    if spec.env:
        container["env"] = [{"name": key, "value": escape_dollars(value)} for key, value in spec.env.items()]
    ports = _container_ports(spec) if probes else ()
    if ports:
        container["ports"] = [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports]
    mounts = [{"name": mount.volume, "mountPath": mount.target, "readOnly": mount.read_only} for mount in spec.volumes]
    if spec.secret_files:
        mounts.append({"name": SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True})
    if mounts:
        container["volumeMounts"] = mounts
    if spec.user:
        user, _, group = spec.user.partition(":")
        context: dict[str, Any] = {"runAsUser": int(user)}
        if group:
            context["runAsGroup"] = int(group)
        container["securityContext"] = context
    health = _health(spec) if probes else None
    if health:
        container.update(_probes(health))
    return container


def _probes(health: HealthCheck) -> dict[str, Any]:
    """Return startup, readiness and liveness probes that run HEALTH's command.

    Docker ignores failures during the start period; the startup probe allows
    as many extra attempts before liveness takes over.
    """
    period = max(1, math.ceil(health.interval_s))
    timeout = max(1, math.ceil(health.timeout_s))
    check = {"exec": {"command": list(health.test)}, "periodSeconds": period, "timeoutSeconds": timeout}
    return {
        "startupProbe": {**check, "failureThreshold": health.retries + math.ceil(health.start_period_s / period)},
        "readinessProbe": {**check, "failureThreshold": health.retries},
        "livenessProbe": {**check, "failureThreshold": health.retries},
    }
