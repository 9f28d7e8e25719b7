"""``run SERVICE``: check the image and the edge, start the container, await it, probe it."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra.engine.apply import apply_plan
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.probes.report import Report, render_json, render_text
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import UPSTREAM_IMAGES, RunSettings
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.relay import relay_endpoint, relay_plan

__all__ = ["RunResult", "run_service", "describe_ca", "fetch_certificate"]

logger = logging.getLogger(__name__)

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass
class RunResult:
    """What ``run`` did and what the probes found."""

    container: str
    image: str
    endpoint: str
    notes: list[str] = field(default_factory=list)
    report: Report | None = None

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
            "notes": self.notes,
            "probes": json.loads(render_json([self.report])) if self.report else None,
        }

    def render_text(self, *, colour: bool) -> str:
        lines = [f"{self.container} is up: {self.endpoint}"]
        if self.report:
            lines.append(render_text([self.report], colour=colour))
        return "\n".join(lines)


def describe_ca(settings: RunSettings) -> str:
    """Return one line naming where the certificate comes from."""
    if not settings.tls_enabled:
        return "TLS off: the service speaks plain HTTP"
    if settings.ssl_test_mode:
        return "certificate: self-signed inside the container (test mode)"
    if settings.acme_server:
        return f"certificate: ACME CA at {settings.acme_server}"
    if settings.ssl_staging:
        return f"certificate: Let's Encrypt staging ({LETS_ENCRYPT_STAGING})"
    return f"certificate: Let's Encrypt ({LETS_ENCRYPT}), unless the edge advertises another ACME CA"


def _plan_for(settings: RunSettings, stack: str) -> StackPlan:
    if settings.service == "relay":
        return relay_plan(settings, stack=stack)
    raise ValueError(f"no plan for service {settings.service!r}")  # settings validation keeps this unreachable


def _endpoint_for(settings: RunSettings) -> str:
    return relay_endpoint(settings)


def run_service(
    engine: DockerEngine,
    settings: RunSettings,
    *,
    stack: str,
    timeout_s: float,
    progress: Progress = SILENT,
) -> RunResult:
    """Start SETTINGS.service, wait until healthy and probe it where it is reachable."""
    result = RunResult(container=settings.container_name, image=settings.image, endpoint=_endpoint_for(settings))

    progress.stage(f"Checking image {settings.image}")
    labels = engine.image_labels(settings.image)
    if labels.get("org.unicity.infra.offline") == "true":
        stands_in = UPSTREAM_IMAGES.get(settings.service, "the upstream image")
        result.notes.append(
            f"using offline image {settings.image}: built from Debian packages and source, standing in for {stands_in}"
        )
        progress.note(result.notes[-1])

    if settings.uses_haproxy and not engine.network_has_alias(settings.haproxy_net, settings.haproxy_host or ""):
        result.notes.append(
            f"no edge reached: no running container answers to {settings.haproxy_host!r} on network "
            f"{settings.haproxy_net!r}, so the service is not registered for routing. "
            "Start one with 'unicity-infra edge up', or pass --no-haproxy for direct mode."
        )
        progress.note(f"warning: {result.notes[-1]}")
    result.notes.append(describe_ca(settings))
    progress.note(result.notes[-1])

    apply_plan(engine, _plan_for(settings, stack), timeout_s=timeout_s, progress=progress)

    if settings.publish:
        progress.stage(f"Probing {result.endpoint}")
        result.report = _probe_published(engine, settings, result.endpoint)
    else:
        result.notes.append("not probed: the service is not published on this host; use 'unicity-infra probe'")
    return result


def _probe_published(engine: DockerEngine, settings: RunSettings, endpoint: str) -> Report:
    from unicity_infra.probes.relay import probe_relay

    assert settings.publish is not None
    connect = (settings.publish.host, settings.publish.port)
    ca_file: Path | None = None
    if settings.tls_enabled and settings.ssl_test_mode:
        ca_file = fetch_certificate(engine, settings.container_name, settings.domain or "")
    return probe_relay(endpoint, connect=connect, ca_file=ca_file, insecure=False)


def fetch_certificate(engine: DockerEngine, container: str, domain: str) -> Path:
    """Copy the container's certificate chain for DOMAIN to a local file and return its path.

    A self-signed test-mode certificate is its own trust anchor, so probes verify against it.
    """
    pem = engine.read_file(container, f"/etc/letsencrypt/live/{domain}/fullchain.pem")
    directory = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "unicity-infra" / "certs"
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    path = directory / f"{container}.pem"
    os.replace(temporary, path)
    return path
