"""Container entrypoint: ``python3 -m unicity_infra.container.entrypoint SERVICE``.

Runs the service plan in steps: prepare directories, render the service's
configuration, serve plain HTTP with nginx, obtain or reuse the certificate,
switch nginx to TLS, start the service and supervise until SIGTERM or SIGINT.
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
from unicity_infra.container.errors import (
    CertificateError,
    ConfigError,
    ProxyNotListeningError,
    ReloadError,
    SupervisorError,
    ToolMissingError,
)
from unicity_infra.container.nginx import NginxSite, install_config, nginx_command, render_http_config, render_tls_config, site_from_config
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
from unicity_infra.container.tls import CertificateState, ensure_certificate

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
    "obtain_certificate",
    "switch_to_tls",
    "run",
    "main",
]

# Named explicitly: run with "python3 -m", this module's __name__ is "__main__".
logger = logging.getLogger("unicity_infra.container.entrypoint")

NGINX = "nginx"
_PROXY_WAIT_S = 10.0
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


def obtain_certificate(config: SupervisorConfig) -> CertificateState | None:
    """Return the domain's certificate, or None when it failed and SSL_REQUIRED is false.

    Raises CertificateError when it failed and SSL_REQUIRED is true.
    """
    try:
        return ensure_certificate(config)
    except CertificateError as exc:
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


def run(config: SupervisorConfig, plan: ServicePlan, *, supervisor: Supervisor | None = None) -> int:
    """Run every step for PLAN, supervise until stopped, and return the exit status."""
    supervisor = supervisor or Supervisor(stop_grace_s=config.stop_grace_s, backoff=config.backoff)
    supervisor.install_signal_handlers()
    site = site_from_config(config, upstream_port=plan.upstream_port, service_locations=plan.nginx_locations)
    supervisor.add(ProcessSpec(name=NGINX, argv=tuple(nginx_command(config.nginx_binary, site))))
    supervisor.add(_service_spec(plan), primary=True)
    runtime = Runtime(config, plan, supervisor)
    status_server = StatusServer(config.status_port, runtime.health_document, routes=runtime.status_routes())

    try:
        check_tools(config, plan)
        status_server.start()
        prepare_directories(config, plan)
        write_config_files(plan)
        if plan.prepare_env is not None:
            supervisor.set_env(plan.name, {**plan.env, **plan.prepare_env()})
        start_nginx(config, site, supervisor, boot_id=runtime.boot_id)

        # TODO: renew while running (certbot renew, then reload nginx); today the
        # certificate is checked only at start, so a container must restart within
        # SSL_CERT_RENEW_DAYS of expiry to pick up a new one.
        if config.tls_requested and not supervisor.stop_requested:
            runtime.certificate = obtain_certificate(config)
        if runtime.certificate is not None and not supervisor.stop_requested:
            _switch_or_stay_plain(config, site, runtime, supervisor)

        if not supervisor.stop_requested:
            supervisor.start(plan.name)
        return supervisor.run()
    except SupervisorError as exc:
        logger.error("%s", exc)
        supervisor.stop_all()
        return exc.exit_code
    except Exception:  # an unexpected error must still stop the children before the supervisor exits
        logger.exception("supervisor failed during start-up of service %s", plan.name)
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
    return run(config, plan)


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
