"""Container entrypoint: ``python3 -m unicity_infra.container.entrypoint SERVICE``.

Runs the service plan in steps: prepare directories, render the service's
configuration, serve plain HTTP with nginx and register that route with the edge.
Then it obtains or reuses the certificate, switches nginx to TLS, registers the TLS
route and starts the service. On SIGTERM or SIGINT it deregisters, then stops.
"""

from __future__ import annotations

import argparse
import functools
import logging
import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from unicity_infra.container.config import SupervisorConfig, load_config, read_str
from unicity_infra.container.edge_link import EdgeLink
from unicity_infra.container.errors import (
    CertificateError,
    ConfigError,
    ProxyNotListeningError,
    ReloadError,
    SupervisorError,
    ToolMissingError,
)
from unicity_infra.container.heartbeat import Heartbeat
from unicity_infra.container.nginx import NginxSite, install_config, nginx_command, render_http_config, render_tls_config, site_from_config
from unicity_infra.container.reachability import DomainUnreachableError, check_domains_reach_us
from unicity_infra.container.renewal import CertificateRenewer, reload_nginx_certificate
from unicity_infra.container.services import ServicePlan, load_plan
from unicity_infra.container.services.plan import PublicDocument
from unicity_infra.container.status import (
    HEALTH_PATH,
    DocumentRoute,
    StatusServer,
    build_health_document,
    is_tcp_reachable,
)
from unicity_infra.container.supervisor import ProcessSpec, Supervisor
from unicity_infra.container.tls import AcmeSource, CertificateState, acme_source, ensure_certificate

__all__ = [
    "NGINX",
    "Runtime",
    "configure_logging",
    "check_tools",
    "prepare_directories",
    "fix_ownership",
    "write_config_files",
    "fetch_own_health",
    "wait_for_proxy",
    "wait_for_redirect",
    "start_nginx",
    "choose_acme_source",
    "reachability_check",
    "obtain_certificate",
    "switch_to_tls",
    "supervise",
    "run",
    "main",
]

# Named explicitly: run with "python3 -m", this module's __name__ is "__main__".
logger = logging.getLogger("unicity_infra.container.entrypoint")

NGINX = "nginx"
_PROXY_WAIT_S = 10.0
# Deregistering runs before the children stop, within the stop grace Docker allows.
_LEAVE_DEADLINE_S = 3.0
_ADVERTISEMENT_ATTEMPTS = 3
_LOG_PREFIX = "unicity_infra.container."


class _ComponentFormatter(logging.Formatter):
    """Formats ``<UTC time> <LEVEL> <component>: <message>``, the component being the module name."""

    @staticmethod
    def converter(seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)

    def format(self, record: logging.LogRecord) -> str:
        record.component = record.name.removeprefix(_LOG_PREFIX)
        return super().format(record)


def configure_logging(level_name: str = "INFO") -> None:
    """Send every log line to stderr with time, level and component, so ``docker logs`` reads as one stream."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ComponentFormatter("%(asctime)s %(levelname)s %(component)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name.upper())


class Runtime:
    """Mutable state shared by the steps and the status server: boot id, certificate, TLS flag."""

    def __init__(self, config: SupervisorConfig, plan: ServicePlan, supervisor: Supervisor) -> None:
        self.config = config
        self.plan = plan
        self.supervisor = supervisor
        self.boot_id = secrets.token_hex(8)
        self.certificate: CertificateState | None = None
        self.tls_active = False

    def health_document(self) -> dict[str, Any]:
        return build_health_document(
            boot_id=self.boot_id,
            domain=self.config.domain,
            tls_active=self.tls_active,
            certificate=self.certificate,
            service=self.supervisor.status(self.plan.name),
            upstream_port=self.plan.upstream_port,
            app_reachable=(
                is_tcp_reachable("127.0.0.1", self.plan.upstream_port, timeout_s=1.0)
                if self.plan.upstream_port is not None else None
            ),
            now=datetime.now(timezone.utc),
        )

    def status_routes(self) -> dict[str, DocumentRoute]:
        """Return the plan's public documents as status-server routes, rendered from the live service status."""
        return {
            document.path: (functools.partial(self._render_public, document), document.headers)
            for document in self.plan.public_documents
        }

    def _render_public(self, document: PublicDocument) -> dict[str, Any]:
        return document.render(self.supervisor.status(self.plan.name))


def check_tools(config: SupervisorConfig, plan: ServicePlan) -> None:
    """Raise ToolMissingError when nginx or the service's program is not an executable file."""
    programs = [
        ("nginx", Path(config.nginx_binary), "install nginx-light or set UNICITY_NGINX_BIN"),
        (plan.name, Path(plan.command[0]), "check the image build, which installs it"),
    ]
    if config.tls_requested:
        programs.append(("openssl", config.openssl_binary, "install openssl or set UNICITY_OPENSSL_BIN"))
    for tool, path, hint in programs:
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ToolMissingError(tool, str(path), hint)


def prepare_directories(config: SupervisorConfig, plan: ServicePlan) -> None:
    """Create the run directory, the ACME webroot and the service's data directories.

    Data directories are handed to the service's uid/gid when they belong to someone else.
    """
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.webroot / ".well-known" / "acme-challenge").mkdir(parents=True, exist_ok=True)
    if config.tls_requested:
        config.cert_root.mkdir(parents=True, exist_ok=True)
    for data_dir in plan.data_dirs:
        data_dir.mkdir(parents=True, exist_ok=True)
        fix_ownership(data_dir, plan.uid, plan.gid)


def fix_ownership(path: Path, uid: int | None, gid: int | None) -> int:
    """Change the owner of PATH and everything below it to UID:GID unless PATH already has it.

    Runs only as root and only when UID is set; returns the number of entries changed.
    """
    if uid is None or os.geteuid() != 0:
        return 0
    group = gid if gid is not None else uid
    status = path.stat()
    if status.st_uid == uid and status.st_gid == group:
        return 0

    changed = 0
    for directory, subdirs, files in os.walk(path):
        for name in [directory, *(os.path.join(directory, entry) for entry in subdirs + files)]:
            os.chown(name, uid, group, follow_symlinks=False)
            changed += 1
    logger.info("changed owner of %s to %d:%d entries=%d", path, uid, group, changed)
    return changed


def write_config_files(plan: ServicePlan) -> None:
    """Write the plan's configuration files, each atomically, with the mode the plan gives."""
    for config_file in plan.config_files:
        config_file.path.parent.mkdir(parents=True, exist_ok=True)
        partial = config_file.path.with_name(config_file.path.name + ".partial")
        partial.write_text(config_file.content)
        os.chmod(partial, config_file.mode)
        os.replace(partial, config_file.path)
        logger.info("wrote %s", config_file.path)


def fetch_own_health(host: str, port: int, *, server_name: str | None = None, timeout_s: float = 1.0) -> dict[str, Any]:
    """GET ``/_ssl/health`` through nginx at HOST:PORT, over TLS with SNI SERVER_NAME when given.

    The certificate is not verified: this checks that nginx serves the new
    configuration, not who signed it. Raises OSError, HTTPException or ValueError.
    """
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        if server_name is not None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            raw = socket.create_connection((host, port), timeout=timeout_s)
            connection.sock = context.wrap_socket(raw, server_hostname=server_name)
        connection.request("GET", HEALTH_PATH, headers={"Host": server_name or host})
        response = connection.getresponse()
        body = response.read(65536)
    finally:
        connection.close()
    if response.status != 200:
        raise ValueError(f"HTTP {response.status}")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("health document is not a JSON object")
    return document


def wait_for_proxy(
    host: str,
    port: int,
    *,
    boot_id: str,
    server_name: str | None = None,
    timeout_s: float,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """Return True once nginx at HOST:PORT relays this supervisor's own health document.

    Checking the document's BOOT_ID, not only the open port, catches another
    process holding the port. Returns False after TIMEOUT_S or when cancelled.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt yet"
    while time.monotonic() < deadline and not is_cancelled():
        try:
            if fetch_own_health(host, port, server_name=server_name).get("boot_id") == boot_id:
                return True
            last_error = "another server answered"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    logger.debug("proxy check on %s:%d gave up: %s", host, port, last_error)
    return False


def wait_for_redirect(
    host: str,
    port: int,
    *,
    server_name: str,
    timeout_s: float,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """Return True once ``GET /`` on HOST:PORT with Host SERVER_NAME returns a 301; False after TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not is_cancelled():
        connection = http.client.HTTPConnection(host, port, timeout=1.0)
        try:
            connection.request("GET", "/", headers={"Host": server_name})
            if connection.getresponse().status == 301:
                return True
        except (OSError, http.client.HTTPException) as exc:
            logger.debug("redirect check on %s:%d failed: %s", host, port, exc)
        finally:
            connection.close()
        time.sleep(0.1)
    return False


def start_nginx(config: SupervisorConfig, site: NginxSite, supervisor: Supervisor, *, boot_id: str) -> None:
    """Install the plain-HTTP configuration, start nginx and wait until it serves on its HTTP port.

    Raises ReloadError when nginx rejects the configuration and ProxyNotListeningError
    when it does not serve in time.
    """
    install_config(config.nginx_binary, site, render_http_config(site))
    supervisor.start(NGINX)

    host = site.listen_address or "127.0.0.1"
    is_cancelled = lambda: supervisor.stop_requested  # noqa: E731
    if not wait_for_proxy(host, site.http_port, boot_id=boot_id, timeout_s=_PROXY_WAIT_S, is_cancelled=is_cancelled):
        if not supervisor.stop_requested:
            raise ProxyNotListeningError(site.http_port, _PROXY_WAIT_S)


def choose_acme_source(config: SupervisorConfig, link: EdgeLink | None) -> AcmeSource:
    """Return the ACME CA to use and log it: ACME_SERVER, else what the edge advertises, else Let's Encrypt.

    The edge's ``acme_ca_pem`` is written to a file that certbot trusts for the
    directory's HTTPS. Raises CertificateError when ``GET /v1/edge`` fails, so a
    passing failure of the edge never sends the request to Let's Encrypt.
    """
    assert config.domain is not None
    if config.acme_server or link is None:
        source = acme_source(config)
    else:
        source = _advertised_acme_source(config, link)
    logger.info("ACME CA: %s", source.describe())
    return source


def _advertised_acme_source(config: SupervisorConfig, link: EdgeLink) -> AcmeSource:
    assert config.domain is not None
    last_error = ""
    for attempt in range(1, _ADVERTISEMENT_ATTEMPTS + 1):
        try:
            advertisement = link.fetch_advertisement()
            break
        except (OSError, ValueError) as exc:
            last_error = str(exc)
            logger.debug("GET /v1/edge failed attempt=%d/%d: %s", attempt, _ADVERTISEMENT_ATTEMPTS, exc)
            time.sleep(1.0)
    else:
        raise CertificateError(
            config.domain,
            f"the edge at {link.api_url} did not say which ACME CA to use (GET /v1/edge: {last_error}); "
            "check the edge, or set ACME_SERVER to choose the CA",
        )

    if advertisement is None or advertisement.acme_directory is None:
        return acme_source(config)
    ca_file = None
    if advertisement.acme_ca_pem:
        ca_file = config.run_dir / "acme" / "edge-acme-ca.pem"
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        ca_file.write_text(advertisement.acme_ca_pem)
    return acme_source(config, advertised_directory=advertisement.acme_directory, advertised_ca_bundle=ca_file)


def reachability_check(
    config: SupervisorConfig, *, has_edge: bool, is_cancelled: Callable[[], bool] = lambda: False
) -> Callable[[], None] | None:
    """Return the check that every server name reaches this container over HTTP, or None when it is off.

    SSL_REACHABILITY_CHECK=auto runs it with an edge or with Let's Encrypt, and skips
    it for an ACME_SERVER without an edge, because such a CA may resolve names
    through its own DNS (Pebble with pebble-challtestsrv does).
    """
    mode = config.reachability_check
    if mode == "false" or (mode == "auto" and not has_edge and config.acme_server is not None):
        logger.info("reachability check skipped: SSL_REACHABILITY_CHECK=%s, edge=%s, ACME_SERVER set", mode, has_edge)
        return None
    return functools.partial(
        check_domains_reach_us,
        config.server_names,
        webroot=config.webroot,
        port=config.domain_http_port,
        static_hosts=dict(config.static_hosts),
        is_cancelled=is_cancelled,
    )


def obtain_certificate(
    config: SupervisorConfig,
    link: EdgeLink | None = None,
    *,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> CertificateState | None:
    """Return the domain's certificate, or None when it failed and SSL_REQUIRED is false.

    Outside test mode the ACME CA is chosen first, and the domain's reachability is
    checked before the CA is asked. Raises CertificateError or DomainUnreachableError
    when it failed and SSL_REQUIRED is true.
    """
    try:
        if config.ssl_test_mode:
            return ensure_certificate(config)
        acme = choose_acme_source(config, link)
        check = reachability_check(config, has_edge=link is not None, is_cancelled=is_cancelled)
        return ensure_certificate(config, acme=acme, before_request=check)
    except (CertificateError, DomainUnreachableError) as exc:
        if config.ssl_required:
            raise
        logger.warning("%s; SSL_REQUIRED=false, so the service is served over plain HTTP only", exc)
        return None


def switch_to_tls(
    config: SupervisorConfig,
    site: NginxSite,
    certificate: CertificateState,
    supervisor: Supervisor,
    *,
    boot_id: str,
) -> None:
    """Install the TLS configuration, reload nginx and wait until it serves TLS on its HTTPS port.

    Raises ReloadError when nginx rejects the configuration or does not serve it in time.
    """
    install_config(config.nginx_binary, site, render_tls_config(site, certificate))
    # SIGHUP makes the nginx master re-read its configuration file and replace its workers.
    if not supervisor.send_signal(NGINX, signal.SIGHUP):
        raise ReloadError(str(site.conf_file), "nginx is not running, so it could not be reloaded")

    host = site.listen_address or "127.0.0.1"
    is_cancelled = lambda: supervisor.stop_requested  # noqa: E731
    served = wait_for_proxy(
        host, site.https_port, boot_id=boot_id, server_name=certificate.domain,
        timeout_s=_PROXY_WAIT_S, is_cancelled=is_cancelled,
    )
    if not served and not supervisor.stop_requested:
        raise ReloadError(str(site.conf_file), f"nginx did not serve TLS on port {site.https_port} within {_PROXY_WAIT_S:g} s")

    # Workers of the old configuration may still take a few new connections on
    # port 80 after the reload; report TLS only once port 80 redirects.
    redirected = wait_for_redirect(
        host, site.http_port, server_name=certificate.domain, timeout_s=_PROXY_WAIT_S, is_cancelled=is_cancelled
    )
    if not redirected and not supervisor.stop_requested:
        raise ReloadError(str(site.conf_file), f"port {site.http_port} did not start redirecting within {_PROXY_WAIT_S:g} s")
    logger.info("serving TLS domain=%s port=%d", certificate.domain, site.https_port)


def supervise(supervisor: Supervisor, *, before_stop: Callable[[], None]) -> int:
    """Supervise until a stop is requested, run BEFORE_STOP, then stop every child; return the exit status.

    BEFORE_STOP runs while nginx and the service still serve, so the edge stops
    routing to this container before its children go away.
    """
    while not supervisor.stop_requested:
        supervisor.poll_once()
        # time.sleep resumes after a signal handler ran (PEP 475), so the stop
        # request is seen at most one poll interval later.
        time.sleep(supervisor.poll_interval_s)
    before_stop()
    return supervisor.stop_all()


def run(config: SupervisorConfig, plan: ServicePlan, *, supervisor: Supervisor | None = None) -> int:
    """Run every step for PLAN, supervise until stopped, and return the exit status."""
    supervisor = supervisor or Supervisor(stop_grace_s=config.stop_grace_s, backoff=config.backoff)
    supervisor.install_signal_handlers()
    site = site_from_config(config, upstream_port=plan.upstream_port, service_locations=plan.nginx_locations)
    supervisor.add(ProcessSpec(name=NGINX, argv=tuple(nginx_command(config.nginx_binary, site))))
    supervisor.add(_service_spec(plan), primary=True)
    runtime = Runtime(config, plan, supervisor)
    status_server = StatusServer(config.status_port, runtime.health_document, routes=runtime.status_routes())
    link: EdgeLink | None = None
    background: list[Heartbeat | CertificateRenewer] = []
    is_cancelled = lambda: supervisor.stop_requested  # noqa: E731
    sleep_unless_stopping = functools.partial(_sleep_unless_stopping, supervisor)

    try:
        check_tools(config, plan)
        status_server.start()
        prepare_directories(config, plan)
        write_config_files(plan)
        if plan.prepare_env is not None:
            supervisor.set_env(plan.name, {**plan.env, **plan.prepare_env()})
        start_nginx(config, site, supervisor, boot_id=runtime.boot_id)

        link = EdgeLink.from_config(config)
        if link is not None and not supervisor.stop_requested:
            link.register(https_port=None, sleep=sleep_unless_stopping)
            background.append(Heartbeat(link, interval_s=config.heartbeat_s))
            background[-1].start()

        if config.tls_requested and not supervisor.stop_requested:
            runtime.certificate = obtain_certificate(config, link, is_cancelled=is_cancelled)
        if runtime.certificate is not None and not supervisor.stop_requested:
            _switch_or_stay_plain(config, site, runtime, supervisor)
        if link is not None and runtime.tls_active and not supervisor.stop_requested:
            # The port nginx listens on: SSL_HTTPS_PORT, unless UNICITY_HTTPS_PORT moves the listener.
            link.register(https_port=config.https_listen_port, sleep=sleep_unless_stopping)
        if runtime.tls_active and not config.ssl_test_mode and not supervisor.stop_requested:
            background.append(_certificate_renewer(config, site, runtime, link))
            background[-1].start()

        if not supervisor.stop_requested:
            supervisor.start(plan.name)
        return supervise(supervisor, before_stop=lambda: _leave(link, background))
    except _StopDuringStartup:
        logger.info("stop requested while waiting for the edge; stopping")
        _leave(link, background)
        return supervisor.stop_all()
    except SupervisorError as exc:
        logger.error("%s", exc)
        _leave(link, background)
        supervisor.stop_all()
        return exc.exit_code
    except Exception:  # an unexpected error must still stop the children before the supervisor exits
        logger.exception("supervisor failed during start-up of service %s", plan.name)
        _leave(link, background)
        supervisor.stop_all()
        return SupervisorError.exit_code
    finally:
        status_server.stop()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse the service name, load the configuration and run; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python3 -m unicity_infra.container.entrypoint")
    parser.add_argument("service", help="service plan to run, e.g. relay")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    configure_logging(read_str(environ, "UNICITY_LOG_LEVEL") or "INFO")

    try:
        config = load_config(environ)
        plan = load_plan(args.service, config, environ)
    except ConfigError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    logger.info(
        "starting service=%s domain=%s tls=%s test_mode=%s",
        plan.name, config.domain or "-", config.tls_requested, config.ssl_test_mode,
    )
    status = run(config, plan)
    # Docker may restart the container before anyone reads its exit code; the log keeps it.
    logger.info("supervisor exiting with status %d service=%s", status, plan.name)
    return status


def _switch_or_stay_plain(config: SupervisorConfig, site: NginxSite, runtime: Runtime, supervisor: Supervisor) -> None:
    assert runtime.certificate is not None
    try:
        switch_to_tls(config, site, runtime.certificate, supervisor, boot_id=runtime.boot_id)
    except ReloadError as exc:
        if config.ssl_required:
            raise
        logger.warning("%s; SSL_REQUIRED=false, so going back to plain HTTP", exc)
        install_config(config.nginx_binary, site, render_http_config(site))
        supervisor.send_signal(NGINX, signal.SIGHUP)
        return
    runtime.tls_active = True


class _StopDuringStartup(Exception):
    """Raised out of a start-up wait (the edge's registration retries) once a stop is requested."""


def _sleep_unless_stopping(supervisor: Supervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if supervisor.stop_requested:
            raise _StopDuringStartup()
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0.0)))
    if supervisor.stop_requested:
        raise _StopDuringStartup()


def _certificate_renewer(
    config: SupervisorConfig, site: NginxSite, runtime: Runtime, link: EdgeLink | None
) -> CertificateRenewer:
    def apply(certificate: CertificateState) -> None:
        # SIGHUP: the nginx master loads the new certificate into new workers, and the
        # old workers finish the connections they hold.
        reload_nginx_certificate(config, site, certificate, lambda: runtime.supervisor.send_signal(NGINX, signal.SIGHUP))
        runtime.certificate = certificate

    return CertificateRenewer(
        config,
        acme=lambda: choose_acme_source(config, link),
        apply=apply,
        before_request=reachability_check(config, has_edge=link is not None),
    )


def _leave(link: EdgeLink | None, background: list[Heartbeat | CertificateRenewer]) -> None:
    """Stop the background threads, then remove this container's routes from the edge within a few seconds."""
    for worker in background:
        worker.stop(timeout_s=0.5)
    if link is not None:
        link.leave(deadline_s=_LEAVE_DEADLINE_S)


def _service_spec(plan: ServicePlan) -> ProcessSpec:
    return ProcessSpec(
        name=plan.name,
        argv=plan.command,
        env=plan.env,
        uid=plan.uid,
        gid=plan.gid,
        cwd=plan.cwd,
        readiness_probe=plan.readiness_probe,
        stdout_watcher=plan.stdout_watcher,
    )


if __name__ == "__main__":
    sys.exit(main())
