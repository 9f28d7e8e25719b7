"""``up``: bring several services up in dependency order and record their endpoints.

The endpoints are written to the stack's state file, which ``env`` reads back
after checking that every recorded container still runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from unicity_infra.commands.run import RunResult, run_service
from unicity_infra.engine.apply import SerializedProgress
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import (
    ContainerFailedError,
    DockerError,
    InfraError,
    SettingsError,
)
from unicity_infra.harness.env import StackEndpoints
from unicity_infra.paths import state_dir
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import (
    DEFAULT_HAPROXY_HOST,
    DEFAULT_HAPROXY_NET,
    SERVICES,
    RunSettings,
    build_aggregator_settings,
    build_run_settings,
    parse_domain,
)
from unicity_infra.stack.plan import default_container_name

__all__ = [
    "service_settings",
    "MODES",
    "SERVICE_ORDER",
    "EdgeLink",
    "UpResult",
    "UpSettings",
    "bring_up",
    "order_services",
    "read_endpoints",
    "state_file",
]

logger = logging.getLogger(__name__)

MODES = ("direct", "local-edge", "production")
# Start order: the faucet needs the relay and the aggregator.
SERVICE_ORDER = ("relay", "aggregator", "faucet")
# Services each service waits for before it starts. The others start at once.
SERVICE_NEEDS = {"faucet": ("relay", "aggregator")}
DIRECT_PORTS = {"relay": 7777, "aggregator": 3000, "faucet": 7780}
DEFAULT_DOMAIN_SUFFIX = "unicity.localhost"


@dataclass(frozen=True)
class UpSettings:
    """Validated options of ``up``."""

    mode: str = "direct"
    services: tuple[str, ...] = ()
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    domains: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    ssl_email: str | None = None
    # Bearer key file of the edge's registration API; local-edge mode takes the edge's own.
    haproxy_api_key_file: str | None = None
    timeout_s: float = 180.0
    image_overrides: tuple[str, ...] = ()


@dataclass
class UpResult:
    """The services ``up`` started and the endpoints where each one is reachable."""

    endpoints: StackEndpoints
    runs: dict[str, RunResult]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.runs.values())

    @property
    def changed(self) -> bool:
        return any(result.changed for result in self.runs.values())

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "endpoints": self.endpoints.to_json(),
            "services": {name: result.to_json() for name, result in self.runs.items()},
        }


def order_services(requested: tuple[str, ...]) -> tuple[str, ...]:
    """Return REQUESTED (default: every available service) in start order.

    Raises SettingsError for a service this version cannot run.
    """
    available = [service for service in SERVICE_ORDER if service in SERVICES]
    for service in requested:
        if service not in available:
            raise SettingsError("SERVICE", service, f"expected one of: {', '.join(available)}")
    chosen = requested or tuple(available)
    return tuple(service for service in SERVICE_ORDER if service in chosen)


def _domain(settings: UpSettings, service: str) -> str:
    if service in settings.domains:
        return settings.domains[service]
    return parse_domain(f"{service}.{settings.domain_suffix}", option="--domain-suffix")


@dataclass(frozen=True)
class EdgeLink:
    """The stack's local edge as ``up`` uses it: where services register, and where the host reaches them."""

    network: str
    alias: str
    # The edge's published HTTPS address on the host, and the CA bundle that verifies its certificates.
    https: tuple[str, int] | None = None
    ca_bundle: str | None = None
    # The API key file the edge requires, or None when it requires none.
    key_file: str | None = None


def _run_options(settings: UpSettings, service: str, *, stack: str, edge: EdgeLink | None = None) -> dict[str, object]:
    options: dict[str, object] = {}
    if service != "aggregator":  # the aggregator stack names its containers after the stack
        options["container_name"] = default_container_name(stack, service)
    if settings.mode == "direct":
        port = settings.ports.get(service, DIRECT_PORTS[service])
        options.update(no_haproxy=True, publish=f"127.0.0.1:{port}")
    else:
        options["domain"] = _domain(settings, service)
        if settings.ssl_email:
            options["ssl_email"] = settings.ssl_email
    if settings.mode != "direct" and settings.haproxy_api_key_file:
        options["haproxy_api_key_file"] = settings.haproxy_api_key_file
    if edge is not None:
        options.update(haproxy_net=edge.network, haproxy_host=edge.alias)
        if edge.key_file and "haproxy_api_key_file" not in options:
            options["haproxy_api_key_file"] = edge.key_file
    return options


def bring_up(engine: DockerEngine, settings: UpSettings, *, stack: str, progress: Progress = SILENT) -> UpResult:
    """Start the requested services in dependency order and wait for them; record the endpoints.

    A service that fails stops the sequence: ContainerFailedError names it and
    carries its log tail, and the services already started are left running for
    inspection ('down' removes them).
    """
    services = order_services(settings.services)
    edge = _ensure_local_edge(engine, stack=stack, progress=progress) if settings.mode == "local-edge" else None

    planned = {service: service_settings(settings, service, stack=stack, edge=edge) for service in services}
    _check_images(engine, planned)
    _check_ports(engine, planned, stack=stack)

    runs = _run_services(engine, planned, stack=stack, timeout_s=settings.timeout_s, progress=progress)

    aggregator = runs.get("aggregator")
    trust_base = (aggregator.trust_base if aggregator else None) or {}
    faucet = runs.get("faucet")
    identity = _faucet_identity(faucet.endpoint, edge=edge, timeout_s=settings.timeout_s,
                                progress=progress) if faucet else {}
    endpoints = StackEndpoints(
        mode=settings.mode,
        relay_url=runs["relay"].endpoint if "relay" in runs else None,
        aggregator_url=aggregator.endpoint if aggregator else None,
        trust_base_url=f"{aggregator.endpoint.rstrip('/')}/.well-known/trust-base.json" if aggregator else None,
        trust_base_path=str(trust_base["file"]) if trust_base.get("file") else None,
        network_id=trust_base.get("networkId") if isinstance(trust_base.get("networkId"), int) else None,
        faucet_url=faucet.endpoint if faucet else None,
        faucet_chain_pubkey=identity.get("chain_pubkey"),
        faucet_direct_address=identity.get("direct_address"),
        ca_bundle=edge.ca_bundle if edge else None,
    )
    # One-shot genesis steps have exited by now; the record lists what must keep running.
    running = [info.name for info in engine.list_containers(stack=stack)
               if info.state == "running" and info.service in runs]
    _write_state(stack, endpoints, containers=running)
    return UpResult(endpoints=endpoints, runs=runs)


def _run_services(engine: DockerEngine, planned: dict[str, RunSettings], *, stack: str, timeout_s: float,
                  progress: Progress) -> dict[str, RunResult]:
    """Run the planned services, each as soon as the services it needs have their containers ready.

    The relay and the aggregator stack start side by side. The faucet plans
    its container once both run all their containers, since its settings come
    from them, and creates it once they are ready, while their probes may
    still run. The first failure in start order is raised once every started
    service has finished.
    """
    lock = threading.Lock()
    runners: dict[str, _ServiceRunner] = {}
    for service, run_settings in planned.items():
        needed = [runners[name] for name in SERVICE_NEEDS.get(service, ()) if name in runners]
        for runner in needed:
            runner.containers_started.wait()
        if any(runner.error for runner in needed):
            break
        runners[service] = _ServiceRunner(
            lambda runner, service=service, run_settings=run_settings, needed=needed: _run_one(
                engine, service, run_settings, stack=stack, timeout_s=timeout_s,
                progress=_ServiceProgress(progress, service, lock), runner=runner,
                before_apply=lambda: _await_ready(service, needed)),
            service=service,
        )
        runners[service].start()
    for runner in runners.values():
        runner.join()
    for runner in runners.values():
        if runner.error is not None:
            raise runner.error
    return {service: runner.result for service, runner in runners.items() if runner.result is not None}


def _await_ready(service: str, needed: list[_ServiceRunner]) -> None:
    """Wait until every NEEDED service has its containers ready, and raise InfraError when one of them failed."""
    for runner in needed:
        runner.started.wait()
    failed = [runner.service for runner in needed if runner.error is not None]
    if failed:
        # _run_services raises the needed service's own error, which comes first in start order.
        raise InfraError(f"service {service} not started: {', '.join(failed)} failed")


class _ServiceRunner(threading.Thread):
    """Background run of one service.

    CONTAINERS_STARTED is set once every container of the service runs, and
    STARTED once they are all ready. A failed run sets both. It is a daemon
    thread, so an interrupted 'up' exits at once instead of waiting for it.
    """

    def __init__(self, target: Callable[[_ServiceRunner], RunResult], *, service: str) -> None:
        super().__init__(name=f"up-{service}", daemon=True)
        self.service = service
        self._target_run = target
        self.containers_started = threading.Event()
        self.started = threading.Event()
        self.result: RunResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_run(self)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that joins
            self.error = exc
        finally:
            self.containers_started.set()
            self.started.set()


def _run_one(engine: DockerEngine, service: str, run_settings: RunSettings, *, stack: str, timeout_s: float,
             progress: Progress, runner: _ServiceRunner, before_apply: Callable[[], None]) -> RunResult:
    progress.stage(f"Service {service}")
    try:
        result = run_service(engine, run_settings, stack=stack, timeout_s=timeout_s, progress=progress,
                             on_started=runner.started.set, on_containers_started=runner.containers_started.set,
                             before_apply=before_apply)
    except ContainerFailedError as exc:
        raise ContainerFailedError(exc.container, f"(service {service}) {exc.reason}",
                                   exit_status=exc.exit_status, log_tail=exc.log_tail) from exc
    if not result.ok:
        raise InfraError(f"service {service} started but its checks failed; run 'unicity-infra status' and "
                         f"'unicity-infra logs {service}' to see why")
    return result


class _ServiceProgress(SerializedProgress):
    """Progress of one service among several that start side by side; stage titles name the service."""

    def __init__(self, progress: Progress, service: str, lock: threading.Lock) -> None:
        super().__init__(progress, lock)
        self._service = service

    def stage(self, title: str) -> None:
        super().stage(title if title.startswith("Service ") else f"{self._service}: {title}")


def service_settings(settings: UpSettings, service: str, *, stack: str, edge: EdgeLink | None) -> RunSettings:
    """Return the run settings of SERVICE as ``up`` starts it; ``export`` builds its files from the same."""
    options = _run_options(settings, service, stack=stack, edge=edge)
    run_settings = build_run_settings(service, **options)  # type: ignore[arg-type]
    if service == "aggregator":
        run_settings = replace(run_settings, aggregator=build_aggregator_settings(
            image_overrides=settings.image_overrides))
    return run_settings


def _check_images(engine: DockerEngine, planned: dict[str, RunSettings]) -> None:
    """Raise DockerError naming every missing image of every service, before anything starts."""
    from unicity_infra.commands.aggregator import stack_images

    images = {service: run_settings.image for service, run_settings in planned.items() if service != "aggregator"}
    if "aggregator" in planned:
        images.update(stack_images(planned["aggregator"]))
    missing = {key: ref for key, ref in images.items() if not engine.image_exists(ref)}
    if not missing:
        return
    listed = ", ".join(f"{key} ({ref})" for key, ref in missing.items())
    raise DockerError(
        f"nothing was started: these images are not present locally: {listed}. Build ours with "
        "'unicity-infra images build --offline'; pull the upstream ones where a registry is reachable, or "
        "point at others with --image-override KEY=IMAGE (UNICITY_INFRA_IMAGE_OVERRIDES). Without a registry, "
        "'eval \"$(bash scripts/standin-images.sh)\"' sets up the test stand-ins"
    )


def _check_ports(engine: DockerEngine, planned: dict[str, RunSettings], *, stack: str) -> None:
    """Raise SettingsError for a host port a service would publish that another program holds, before anything starts.

    Ports the stack's own running containers publish are left out: their
    containers keep them or free them when they are recreated.
    """
    ours = engine.published_ports(stack=stack)
    for service, run_settings in planned.items():
        if not run_settings.publish:
            continue
        address = run_settings.publish
        if address.port in ours:
            continue
        host = address.host.strip("[]")
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # Sockets in TIME_WAIT do not stop Docker from publishing the port, so they must not fail the check.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, address.port))
            except OSError as exc:
                raise SettingsError(
                    f"--{service}-port", address.port,
                    f"{address} is not free ({exc.strerror}); stop the program that holds it or pick another "
                    "port. Nothing was started",
                ) from None


def _faucet_identity(endpoint: str, *, edge: EdgeLink | None, timeout_s: float, progress: Progress) -> dict[str, str]:
    """Wait until the faucet's discovery document carries its chain pubkey and return it.

    The faucet announces its key in a log line some time after its process
    starts, so a healthy container may not know it yet. Behind the local edge
    the document is fetched through the edge's HTTPS port and verified against
    its CA bundle, because the host resolves no name of the stack.
    """
    from unicity_infra.probes.errors import ProbeError
    from unicity_infra.probes.faucet import fetch_discovery

    url = endpoint.rstrip("/") + "/.well-known/faucet.json"
    connect = edge.https if edge is not None and url.startswith("https://") else None
    ca_file = Path(edge.ca_bundle) if connect is not None and edge is not None and edge.ca_bundle else None
    started = time.monotonic()
    document: dict[str, object] = {}
    while time.monotonic() - started < timeout_s:
        try:
            document, _ = fetch_discovery(url, connect=connect, ca_file=ca_file, timeout_s=5.0)
        except ProbeError as exc:
            logger.debug("faucet discovery not readable yet url=%s error=%s", url, exc)
        if document.get("status") == "running" and document.get("chain_pubkey"):
            return {key: str(document[key]) for key in ("chain_pubkey", "direct_address") if document.get(key)}
        progress.wait("the faucet to announce its chain pubkey", time.monotonic() - started, timeout_s)
        time.sleep(0.25)
    raise InfraError(f"the faucet at {endpoint} did not announce its chain pubkey within {timeout_s:.0f} s "
                     f"(discovery status: {document.get('status', 'unreadable')}); run 'unicity-infra logs faucet'")


def _ensure_local_edge(engine: DockerEngine, *, stack: str, progress: Progress) -> EdgeLink:
    """Start the stack's local edge unless it runs, and return its network, alias and HTTPS address.

    A running edge is used as it is, also when 'edge up' put it on another
    network or other ports: the services then register on that network.
    """
    from unicity_infra.commands.edge import edge_status, edge_up
    from unicity_infra.stack.edge import (
        LABEL_EDGE_ALIAS,
        ROLE_EDGE_NETWORK,
        EdgeSettings,
    )

    status = edge_status(engine, stack=stack)
    if status is not None and status.state == "running":
        networks = engine.container_networks(status.container)
        edge_networks = [name for name in networks if engine.network_role(name) == ROLE_EDGE_NETWORK]
        network = (edge_networks or networks or [DEFAULT_HAPROXY_NET])[0]
        alias = engine.container_labels(status.container).get(LABEL_EDGE_ALIAS, DEFAULT_HAPROXY_HOST)
        progress.note(f"using the running local edge {status.container} on network {network!r}")
    else:
        defaults = EdgeSettings()
        status = edge_up(engine, defaults, stack=stack, progress=progress)
        network, alias = defaults.network, defaults.alias
    https = urlsplit(status.https_url) if status.https_url else None
    return EdgeLink(
        network=network,
        alias=alias,
        https=(https.hostname or "127.0.0.1", https.port or 443) if https else None,
        ca_bundle=status.ca_bundle,
        key_file=status.key_file,
    )


def _command(stack: str) -> str:
    return "unicity-infra" if stack == "default" else f"unicity-infra --stack {stack}"


def state_file(stack: str) -> Path:
    """Return the file where ``up`` records STACK's endpoints."""
    return state_dir() / "stacks" / stack / "endpoints.json"


def _write_state(stack: str, endpoints: StackEndpoints, *, containers: list[str]) -> None:
    path = state_file(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"endpoints": endpoints.to_json(), "containers": containers}, indent=2))
    os.replace(temporary, path)


def read_endpoints(engine: DockerEngine, *, stack: str) -> StackEndpoints:
    """Return the endpoints ``up`` recorded, after checking their containers still run.

    Raises InfraError when nothing was recorded or a recorded container is gone:
    stale variables would point a test suite at nothing.
    """
    path = state_file(stack)
    if not path.is_file():
        raise InfraError(f"no endpoints recorded for stack {stack!r}; run '{_command(stack)} up' first")
    document = json.loads(path.read_text())
    running = {info.name for info in engine.list_containers(stack=stack) if info.state == "running"}
    missing = [name for name in document["containers"] if name not in running]
    if missing:
        raise InfraError(f"containers recorded by 'up' are not running: {', '.join(missing)}; "
                         f"run '{_up_again(stack, document['endpoints'])}' again")
    return StackEndpoints(**document["endpoints"])


def _up_again(stack: str, recorded: dict[str, object]) -> str:
    """Return the 'up' command that brings back the services and direct-mode ports of a RECORDED stack."""
    services = [service for service in SERVICE_ORDER if recorded.get(f"{service}_url")]
    parts = [_command(stack), "up", *(services if len(services) < len(SERVICE_ORDER) else [])]
    mode = str(recorded.get("mode") or "direct")
    if mode != "direct":
        parts += ["--mode", mode]
        if mode == "production":
            parts.append("…")  # the domains and e-mail are not recorded
        return " ".join(parts)
    for service in services:
        port = urlsplit(str(recorded[f"{service}_url"])).port
        if port is not None and port != DIRECT_PORTS[service]:
            parts += [f"--{service}-port", str(port)]
    return " ".join(parts)
