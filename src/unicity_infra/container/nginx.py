"""nginx in front of the service: configuration rendering, validation and installation.

Renderers are pure and return the whole ``nginx.conf`` as a string. A rendered
configuration reaches the live path only after ``nginx -t`` accepted it, so a
configuration naming a missing certificate is never loaded.
"""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from unicity_infra.container.config import SupervisorConfig
from unicity_infra.container.errors import ReloadError, ToolMissingError
from unicity_infra.container.templating import render_template
from unicity_infra.container.tls import CertificateState

__all__ = [
    "NginxSite",
    "site_from_config",
    "render_http_config",
    "render_tls_config",
    "nginx_command",
    "check_config",
    "install_config",
]

logger = logging.getLogger(__name__)

_CHECK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class NginxSite:
    """Everything the nginx renderers need: ports, names, paths and the upstream."""

    prefix: Path
    http_port: int
    https_port: int
    status_port: int
    upstream_port: int | None
    webroot: Path
    server_names: tuple[str, ...] = ()
    listen_address: str | None = None
    user: str | None = None
    # Location blocks that serve the service, placed in the server that faces
    # clients. None proxies every path to 127.0.0.1:upstream_port.
    service_locations: str | None = None

    @property
    def conf_file(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def temp_dir(self) -> Path:
        return self.prefix / "tmp"


def site_from_config(
    config: SupervisorConfig, *, upstream_port: int | None, service_locations: str | None = None
) -> NginxSite:
    """Return the nginx site for CONFIG, serving SERVICE_LOCATIONS or else proxying to 127.0.0.1:UPSTREAM_PORT."""
    return NginxSite(
        prefix=config.run_dir / "nginx",
        http_port=config.http_listen_port,
        https_port=config.https_listen_port,
        status_port=config.status_port,
        upstream_port=upstream_port,
        webroot=config.webroot,
        server_names=config.server_names,
        listen_address=config.listen_address,
        user=config.nginx_user,
        service_locations=service_locations,
    )


def render_http_config(site: NginxSite) -> str:
    """Render the plain-HTTP configuration: webroot, health, and the service's locations."""
    http_server = _render_http_server(site, locations=_render_service_locations(site))
    return _render_main(site, description="plain HTTP", servers=[http_server])


def render_tls_config(site: NginxSite, certificate: CertificateState) -> str:
    """Render the TLS configuration for CERTIFICATE.

    Port 443 (``site.https_port``) serves the service's locations. Port 80 keeps
    the ACME webroot and the health location and redirects everything else to HTTPS.
    """
    redirect = _location("/", "return 301 https://$host$request_uri;\n")
    http_server = _render_http_server(site, locations=redirect)
    tls_server = render_template(
        "nginx-tls-server.conf",
        listen_https=_listen(site, site.https_port),
        server_names=_server_names(site),
        cert_file=str(certificate.cert_file),
        key_file=str(certificate.key_file),
        status_port=str(site.status_port),
        locations=textwrap.indent(_render_service_locations(site).rstrip("\n"), " " * 4),
    )
    return _render_main(site, description=f"TLS for {certificate.domain}", servers=[http_server, tls_server])


def nginx_command(binary: Path, site: NginxSite, conf_file: Path | None = None) -> list[str]:
    """Return the argv that runs nginx for SITE in the foreground with CONF_FILE (default: the live file)."""
    return [str(binary), "-p", f"{site.prefix}/", "-e", "stderr", "-c", str(conf_file or site.conf_file)]


def check_config(binary: Path, site: NginxSite, conf_file: Path) -> None:
    """Run ``nginx -t`` on CONF_FILE; raises ReloadError with nginx's own message when it fails."""
    command = [*nginx_command(binary, site, conf_file), "-t", "-q"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_CHECK_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ToolMissingError("nginx", str(binary), "install nginx-light or set UNICITY_NGINX_BIN") from None
    except subprocess.TimeoutExpired:
        raise ReloadError(str(conf_file), f"nginx -t did not finish within {_CHECK_TIMEOUT_S:g} s") from None

    if result.returncode != 0:
        raise ReloadError(str(conf_file), f"nginx -t rejected it: {result.stderr.strip()}")


def install_config(binary: Path, site: NginxSite, text: str) -> None:
    """Write TEXT as a candidate, check it with ``nginx -t``, then move it over the live file.

    The rename is atomic, so nginx (re)reads either the old or the new file.
    Raises ReloadError and leaves the live file untouched when nginx rejects TEXT.
    """
    site.prefix.mkdir(parents=True, exist_ok=True)
    site.temp_dir.mkdir(exist_ok=True)
    candidate = site.conf_file.with_name(site.conf_file.name + ".candidate")
    candidate.write_text(text)

    try:
        check_config(binary, site, candidate)
    except ReloadError:
        candidate.unlink(missing_ok=True)
        raise
    os.replace(candidate, site.conf_file)
    logger.info("installed nginx configuration %s", site.conf_file)


def _render_main(site: NginxSite, *, description: str, servers: list[str]) -> str:
    user_directive = f"user {site.user};" if site.user else "# no user directive: nginx runs as the supervisor's user"
    return render_template(
        "nginx-main.conf",
        description=description,
        user_directive=user_directive,
        pid_file=str(site.pid_file),
        temp_dir=str(site.temp_dir),
        servers=textwrap.indent("\n".join(server.rstrip("\n") + "\n" for server in servers), " " * 4).rstrip("\n"),
    )


def _render_http_server(site: NginxSite, *, locations: str) -> str:
    return render_template(
        "nginx-http-server.conf",
        listen_http=_listen(site, site.http_port),
        server_names=_server_names(site),
        webroot=str(site.webroot),
        status_port=str(site.status_port),
        locations=textwrap.indent(locations.rstrip("\n"), " " * 4),
    )


def _render_service_locations(site: NginxSite) -> str:
    if site.service_locations is not None:
        return site.service_locations
    if site.upstream_port is None:
        # A service without a port and without locations of its own serves nothing over HTTP.
        return _location("/", "return 404;\n")
    return _location("/", render_template("nginx-proxy-location.conf", upstream_port=str(site.upstream_port)))


def _location(match: str, body: str) -> str:
    """Wrap BODY in ``location MATCH { ... }``, indented as nginx's own examples are."""
    indented = textwrap.indent(body.rstrip("\n"), " " * 4)
    return f"location {match} {{\n{indented}\n}}\n"


def _listen(site: NginxSite, port: int) -> str:
    return f"{site.listen_address}:{port}" if site.listen_address else str(port)


def _server_names(site: NginxSite) -> str:
    # "_" matches no real host; with default_server on the listen it still catches every request.
    return " ".join(site.server_names) if site.server_names else "_"
