"""``run SERVICE``: check the image and the edge, start the container, await it, probe it."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from unicity_infra.engine.apply import apply_plan
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import ImageNotFoundError
from unicity_infra.paths import state_dir
from unicity_infra.probes.report import Report, render_json, render_text
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import UPSTREAM_IMAGES, RunSettings
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.relay import relay_endpoint, relay_plan
from unicity_infra.stack.spec import (
    DEFAULT_STACK,
    LABEL_MANAGED,
    LABEL_SERVICE,
    LABEL_STACK,
    ContainerSpec,
)

__all__ = ["RunResult", "describe_ca", "fetch_certificate", "plan_for", "run_service"]

logger = logging.getLogger(__name__)

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass
class RunResult:
    """The outcome of ``run``: the container, its endpoint, notes and probe report."""

    container: str
    image: str
    endpoint: str
    notes: list[str] = field(default_factory=list)
    report: Report | None = None
    changed: bool = True
    # The aggregator's genesis trust base: networkId, epoch, sha256, createdAt, source and file.
    trust_base: dict[str, object] | None = None

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok

    def to_json(self) -> dict[str, object]:
        import json

        return {
            "ok": self.ok,
            "container": self.container,
            "image": self.image,
            "endpoint": self.endpoint,
            "changed": self.changed,
            "notes": self.notes,
            "probes": json.loads(render_json([self.report])) if self.report else None,
            "trust_base": self.trust_base,
        }

    def render_text(self, *, colour: bool) -> str:
        lines = [f"{self.container} is up: {self.endpoint}"]
        if self.trust_base:
            lines.append(
                f"trust base: networkId {self.trust_base['networkId']}, epoch {self.trust_base['epoch']}, "
                f"sha256 {self.trust_base['sha256']}, saved to {self.trust_base['file']}"
            )
        if self.report:
            lines.append(render_text([self.report], colour=colour))
        return "\n".join(lines)


def describe_ca(settings: RunSettings, *, edge: LocalEdge | None = None) -> str:
    """Return one line naming where the certificate comes from."""
    if not settings.tls_enabled:
        return "TLS off: the service speaks plain HTTP"
    if settings.ssl_test_mode:
        return "certificate: self-signed inside the container (test mode)"
    if settings.acme_server:
        return f"certificate: ACME CA at {settings.acme_server}"
    if edge is not None and edge.acme_directory:
        return f"certificate: the local edge's ACME CA (Pebble) at {edge.acme_directory}"
    if settings.ssl_staging:
        return f"certificate: Let's Encrypt staging ({LETS_ENCRYPT_STAGING})"
    return f"certificate: Let's Encrypt ({LETS_ENCRYPT}), unless the edge advertises another ACME CA"


def plan_for(settings: RunSettings, stack: str) -> StackPlan:
    """Return the containers, networks and volumes that run SETTINGS in STACK; ``export`` renders the same plan."""
    if settings.service == "relay":
        return relay_plan(settings, stack=stack)
    if settings.service == "aggregator":
        from unicity_infra.commands.aggregator import plan_aggregator_stack

        return plan_aggregator_stack(settings, stack=stack)
    if settings.service == "faucet":
        from unicity_infra.stack.faucet import faucet_plan

        return faucet_plan(settings, stack=stack)
    raise ValueError(f"no plan for service {settings.service!r}")  # settings validation keeps this unreachable


def _endpoint_for(settings: RunSettings, stack: str) -> str:
    if settings.service == "aggregator":
        from unicity_infra.stack.aggregator import aggregator_endpoint

        return aggregator_endpoint(settings, stack=stack)
    if settings.service == "faucet":
        from unicity_infra.stack.faucet import faucet_endpoint

        return faucet_endpoint(settings)
    return relay_endpoint(settings)


def run_service(
    engine: DockerEngine,
    settings: RunSettings,
    *,
    stack: str,
    timeout_s: float,
    progress: Progress = SILENT,
    on_started: Callable[[], None] | None = None,
    on_containers_started: Callable[[], None] | None = None,
    before_apply: Callable[[], None] | None = None,
) -> RunResult:
    """Start SETTINGS.service, wait until healthy and probe it where it is reachable.

    BEFORE_APPLY is called just before the plan is applied. An exception from
    it ends the run before any container of the plan is created.
    ON_CONTAINERS_STARTED is called once every container runs, before they are
    all ready, and ON_STARTED once they are ready, before the probes run.
    """
    result = RunResult(container=settings.container_name, image=settings.image, endpoint=_endpoint_for(settings, stack))

    progress.stage(f"Checking image {settings.image}")
    # The aggregator checks all its images at once before it changes anything (prepare_aggregator_run).
    if settings.service != "aggregator" and not engine.image_exists(settings.image):
        raise ImageNotFoundError(
            settings.image,
            f"nothing was created. Build it with 'unicity-infra images build {settings.service}' (add --offline "
            "when no registry is reachable), or pass --image IMAGE",
        )
    labels = engine.image_labels(settings.image)
    if labels.get("org.unicity.infra.offline") == "true":
        stands_in = UPSTREAM_IMAGES.get(settings.service, UPSTREAM_IMAGES["ssl-manager"])
        result.notes.append(
            f"using offline image {settings.image}: built from Debian packages and source, standing in for {stands_in}"
        )
        progress.note(result.notes[-1])

    edge = find_local_edge(engine, settings) if settings.uses_haproxy else None
    if edge is not None:
        result.notes.append(f"local edge {edge.container} found on network {settings.haproxy_net!r}")
        progress.note(result.notes[-1])
        if edge.key_required and settings.haproxy_api_key_file is None and edge.key_file:
            settings = replace(settings, haproxy_api_key_file=Path(edge.key_file))
    elif settings.uses_haproxy and _is_docker_name(settings.haproxy_host) and not engine.network_has_alias(
        settings.haproxy_net, settings.haproxy_host or ""
    ):
        elsewhere = _edge_networks(engine, stack)
        hint = (f"This stack's edge is on network {elsewhere[0]!r}: pass --haproxy-net {elsewhere[0]}."
                if elsewhere else "Start one with 'unicity-infra edge up', or pass --no-haproxy for direct mode.")
        result.notes.append(
            f"no edge reached: no running container answers to {settings.haproxy_host!r} on network "
            f"{settings.haproxy_net!r}, so registration will keep retrying and the service will not be routed. "
            + hint
        )
        progress.note(f"warning: {result.notes[-1]}")
    result.notes.append(describe_ca(settings, edge=edge))
    progress.note(result.notes[-1])

    if settings.service == "faucet":
        from unicity_infra.commands.faucet import pin_stack_trust_base, resolve_faucet_defaults

        settings, faucet_notes = resolve_faucet_defaults(engine, settings, stack=stack)
        settings = pin_stack_trust_base(engine, settings, stack=stack)
        for note in faucet_notes:
            result.notes.append(note)
            progress.note(note)
    plan = plan_for(settings, stack)
    # The last container is the one clients reach. For the aggregator stack that is its proxy.
    result.container = plan.containers[-1].name
    if settings.service == "aggregator":
        from unicity_infra.commands.aggregator import prepare_aggregator_run

        for note in prepare_aggregator_run(engine, settings, stack=stack, progress=progress):
            result.notes.append(note)
            progress.note(note)
    if edge is not None:
        plan.containers[-1] = _behind_local_edge(engine, settings, plan.containers[-1], edge, stack=stack,
                                                 result=result, progress=progress)
    if before_apply is not None:
        before_apply()
    applied = apply_plan(engine, plan, timeout_s=timeout_s, progress=progress, on_all_started=on_containers_started)
    if on_started is not None:
        on_started()
    result.changed = applied.changed
    if not applied.changed:
        names = ", ".join(applied.unchanged)
        verb = "runs" if len(applied.unchanged) == 1 else "run"
        result.notes.append(f"no changes: {names} already {verb} these settings")
        progress.note(result.notes[-1])

    if settings.publish:
        progress.stage(f"Probing {result.endpoint}")
        result.report = _probe_published(engine, settings, result.endpoint, stack=stack, result=result)
    elif edge is not None and settings.domain:
        progress.stage(f"Probing {result.endpoint} through the local edge")
        result.report = _probe_through_edge(engine, settings, result.endpoint, edge, stack=stack, result=result)
    elif settings.service == "aggregator":
        # Readiness must be checked, so the aggregator is probed where wallets reach it.
        progress.stage(f"Probing {result.endpoint}")
        result.report = _probe(engine, settings, result.endpoint, connect=None, ca_file=None, stack=stack, result=result)
    else:
        result.notes.append("not probed: the service is not published on this host; use 'unicity-infra probe'")
    return result


@dataclass(frozen=True)
class LocalEdge:
    """Our local edge as a service uses it: its address and the files clients need."""

    container: str
    address: str
    https_host: str
    https_port: int
    ca_bundle: Path | None
    acme_directory: str | None
    key_required: bool
    key_file: str | None


def _edge_networks(engine: DockerEngine, stack: str) -> list[str]:
    """Return the networks of STACK's local edge while it runs, else an empty list."""
    from unicity_infra.stack.edge import edge_container_name

    return engine.container_networks(edge_container_name(stack))


def _is_docker_name(host: str | None) -> bool:
    """Tell whether HOST is a single-label name, as Docker's DNS serves container aliases."""
    return bool(host) and "." not in str(host)


def find_local_edge(engine: DockerEngine, settings: RunSettings) -> LocalEdge | None:
    """Return our edge if it has the configured host name on the edge network, else None."""
    from unicity_infra.commands.edge import edge_status

    name = engine.find_by_alias(settings.haproxy_net, settings.haproxy_host or "")
    labels = engine.container_labels(name) if name else {}
    if not name or labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_SERVICE) != "edge":
        return None
    status = edge_status(engine, stack=labels.get(LABEL_STACK, DEFAULT_STACK))
    address = engine.container_address(name, settings.haproxy_net)
    if status is None or address is None or not status.https_url:
        return None
    https = urlsplit(status.https_url)
    return LocalEdge(
        container=name,
        address=address,
        https_host=https.hostname or "127.0.0.1",
        https_port=https.port or 443,
        ca_bundle=Path(status.ca_bundle) if status.ca_bundle else None,
        acme_directory=status.acme_directory,
        key_required=status.key_required,
        key_file=status.key_file,
    )


def _behind_local_edge(engine: DockerEngine, settings: RunSettings, spec: ContainerSpec, edge: LocalEdge, *,
                       stack: str, result: RunResult, progress: Progress) -> ContainerSpec:
    """Return SPEC with the names it needs resolved to the local edge and, for the faucet, the edge's CA trusted.

    The container checks that its domain reaches it before asking the CA, and
    the faucet connects to the stack's relay and aggregator by their domains. On
    a local edge no DNS server resolves these names, so /etc/hosts maps them to
    the edge.
    """
    names: tuple[str, ...] = (settings.domain, *settings.domain_aliases) if settings.domain else ()
    if settings.service == "faucet":
        from unicity_infra.commands.faucet import edge_routed_names
        from unicity_infra.stack.faucet import trust_edge_ca

        routed = edge_routed_names(engine, settings, stack=stack)
        names += routed
        if routed:
            result.notes.append(f"the faucet reaches {', '.join(routed)} through the local edge {edge.container}")
            progress.note(result.notes[-1])
        if edge.ca_bundle is not None:
            spec = trust_edge_ca(spec, edge.ca_bundle)
            result.notes.append(f"the faucet trusts the local edge's CA bundle {edge.ca_bundle} (NODE_EXTRA_CA_CERTS)")
            progress.note(result.notes[-1])
    if not names:
        return spec
    return replace(spec, extra_hosts={name: edge.address for name in names})


def _probe_through_edge(engine: DockerEngine, settings: RunSettings, endpoint: str, edge: LocalEdge, *,
                        stack: str, result: RunResult) -> Report:
    ca_file = edge.ca_bundle
    if settings.ssl_test_mode:
        ca_file = fetch_certificate(engine, settings.container_name, settings.domain or "")
    connect = (edge.https_host, edge.https_port)
    return _probe(engine, settings, endpoint, connect=connect, ca_file=ca_file, stack=stack, result=result)


def _probe_published(engine: DockerEngine, settings: RunSettings, endpoint: str, *,
                     stack: str, result: RunResult) -> Report:
    assert settings.publish is not None
    connect = (settings.publish.host, settings.publish.port)
    ca_file: Path | None = None
    if settings.tls_enabled and settings.ssl_test_mode:
        ca_file = fetch_certificate(engine, settings.container_name, settings.domain or "")
    return _probe(engine, settings, endpoint, connect=connect, ca_file=ca_file, stack=stack, result=result)


def _probe(engine: DockerEngine, settings: RunSettings, endpoint: str, *, connect: tuple[str, int] | None,
           ca_file: Path | None, stack: str, result: RunResult) -> Report:
    """Run the probe of SETTINGS.service; the aggregator's also decides readiness and notes its trust base."""
    if settings.service == "aggregator":
        from unicity_infra.commands.aggregator import probe_aggregator_stack

        report, trust_base, saved = probe_aggregator_stack(engine, endpoint, stack=stack, connect=connect, ca_file=ca_file)
        result.trust_base = {**trust_base.summary(), "file": str(saved)}
        return report

    if settings.service == "faucet":
        from unicity_infra.probes.faucet import probe_faucet

        return probe_faucet(endpoint, connect=connect, ca_file=ca_file, insecure=False)

    from unicity_infra.probes.relay import probe_relay

    return probe_relay(endpoint, connect=connect, ca_file=ca_file, insecure=False)


def fetch_certificate(engine: DockerEngine, container: str, domain: str) -> Path:
    """Copy the container's certificate chain for DOMAIN to a local file and return its path.

    A self-signed test-mode certificate is its own trust anchor, so probes verify against it.
    """
    pem = engine.read_file(container, f"/etc/letsencrypt/live/{domain}/fullchain.pem")
    directory = state_dir() / "certs"
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    path = directory / f"{container}.pem"
    os.replace(temporary, path)
    return path
