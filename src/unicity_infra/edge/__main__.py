"""Entry point of the edge container: ``python3 -m unicity_infra.edge``.

Starts haproxy as a supervised child, then serves the registration API until SIGTERM or SIGINT.
Every option also reads an ``EDGE_*`` environment variable; ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from unicity_infra.edge.api import EdgeInfo, EdgeService, make_server
from unicity_infra.edge.errors import EdgeError
from unicity_infra.edge.haproxy_config import (
    DEFAULT_API_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_HTTPS_PORT,
    DOCKER_NAMESERVER,
    HAProxyProcess,
    render_haproxy_config,
)

logger = logging.getLogger("unicity_infra.edge")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected an integer from 1 to 65535") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected an integer from 1 to 65535")
    return value


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m unicity_infra.edge",
        description="Run HAProxy and the /v1/backends registration API that configures it.",
        epilog="Exit status: 0 stopped by a signal, 1 failed to start, 2 invalid options.",
    )
    parser.add_argument("--listen", default=_env("EDGE_API_ADDRESS", "0.0.0.0"),
                        help="address the API binds (EDGE_API_ADDRESS, default 0.0.0.0)")
    parser.add_argument("--api-port", type=_port, default=_env("EDGE_API_PORT", str(DEFAULT_API_PORT)),
                        help=f"TCP port of the API (EDGE_API_PORT, default {DEFAULT_API_PORT})")

    parser.add_argument("--http-port", type=_port, default=_env("EDGE_HTTP_PORT", str(DEFAULT_HTTP_PORT)),
                        help=f"HAProxy's plain HTTP port, routed by Host (EDGE_HTTP_PORT, default {DEFAULT_HTTP_PORT})")
    parser.add_argument("--https-port", type=_port, default=_env("EDGE_HTTPS_PORT", str(DEFAULT_HTTPS_PORT)),
                        help=f"HAProxy's TLS passthrough port, routed by SNI (EDGE_HTTPS_PORT, default {DEFAULT_HTTPS_PORT})")
    parser.add_argument("--bind-address", default=_env("EDGE_BIND_ADDRESS", ""),
                        help="address HAProxy's listeners bind (EDGE_BIND_ADDRESS, default every IPv4 address)")

    parser.add_argument("--state-dir", type=Path, default=_env("EDGE_STATE_DIR", "/var/lib/unicity-edge"),
                        help="directory of backends.json, haproxy.cfg and the master socket "
                             "(EDGE_STATE_DIR, default /var/lib/unicity-edge)")
    parser.add_argument("--resolvers", choices=("docker", "none"), default=_env("EDGE_RESOLVERS", "docker"),
                        help="'docker' re-resolves container names through Docker's DNS at run time; "
                             "'none' resolves them once through libc at load (EDGE_RESOLVERS, default docker)")
    parser.add_argument("--nameserver", default=_env("EDGE_NAMESERVER", DOCKER_NAMESERVER),
                        help=f"DNS server for --resolvers docker (EDGE_NAMESERVER, default {DOCKER_NAMESERVER})")
    parser.add_argument("--haproxy", default=_env("EDGE_HAPROXY_BIN", "haproxy"),
                        help="haproxy executable (EDGE_HAPROXY_BIN, default haproxy from PATH)")

    parser.add_argument("--api-key-file", type=Path, default=_env("EDGE_API_KEY_FILE", None),
                        help="file holding the bearer key clients must send; without it the API is open "
                             "(EDGE_API_KEY_FILE)")

    parser.add_argument("--acme-directory", default=_env("EDGE_ACME_DIRECTORY", None),
                        help="ACME directory URL advertised by GET /v1/edge (EDGE_ACME_DIRECTORY)")
    parser.add_argument("--ca-bundle-url", default=_env("EDGE_CA_BUNDLE_URL", None),
                        help="URL of the CA bundle advertised by GET /v1/edge (EDGE_CA_BUNDLE_URL)")
    parser.add_argument("--ca-bundle-path", default=_env("EDGE_CA_BUNDLE_PATH", None),
                        help="path of the CA bundle advertised by GET /v1/edge (EDGE_CA_BUNDLE_PATH)")

    parser.add_argument("--acme-ca-file", default=_env("EDGE_ACME_CA_FILE", None),
                        help="CA file that verifies the ACME directory's HTTPS, sent inline by GET /v1/edge "
                             "(EDGE_ACME_CA_FILE)")

    parser.add_argument("--log-level", default=_env("EDGE_LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level (EDGE_LOG_LEVEL, default INFO)")
    return parser


def read_api_key(path: Path | None) -> str | None:
    """Return the key in ``path`` without surrounding whitespace; raise ValueError if unusable."""
    if path is None:
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read API key file {path}: {exc.strerror}; check the path and its permissions") from None
    if not key:
        raise ValueError(f"API key file {path} is empty; write the key into it or drop --api-key-file")
    return key


def build_service(options: argparse.Namespace) -> EdgeService:
    state_dir: Path = options.state_dir
    resolvers = None if options.resolvers == "none" else options.resolvers
    render = functools.partial(
        render_haproxy_config,
        http_port=options.http_port,
        https_port=options.https_port,
        api_port=options.api_port,
        bind_address=options.bind_address,
        resolvers=resolvers,
        nameserver=options.nameserver,
    )
    haproxy = HAProxyProcess(
        config_path=state_dir / "haproxy.cfg",
        master_socket=state_dir / "master.sock",
        haproxy_bin=options.haproxy,
    )
    info = EdgeInfo(
        acme_directory=options.acme_directory,
        ca_bundle_url=options.ca_bundle_url,
        ca_bundle_path=options.ca_bundle_path,
        acme_ca_file=options.acme_ca_file,
    )
    return EdgeService(
        state_path=state_dir / "backends.json",
        config_path=state_dir / "haproxy.cfg",
        haproxy=haproxy,
        render=render,
        reserved_ports={options.http_port, options.https_port, options.api_port},
        haproxy_bin=options.haproxy,
        info=info,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    logging.basicConfig(
        level=options.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    try:
        api_key = read_api_key(options.api_key_file)
    except ValueError as exc:
        logger.error("%s", exc)
        return EXIT_USAGE
    if api_key is None:
        logger.warning("no API key file given; anyone who reaches port %d can change the routes", options.api_port)

    service = build_service(options)
    try:
        options.state_dir.mkdir(parents=True, exist_ok=True)
        service.start()
    except (EdgeError, OSError) as exc:
        logger.error("edge failed to start: %s", exc)
        service.stop()
        return EXIT_FAILED

    try:
        server = make_server(service, host=options.listen, port=options.api_port, api_key=api_key)
    except OSError as exc:
        logger.error("cannot bind the API on %s:%d: %s; pick another --api-port", options.listen, options.api_port, exc.strerror)
        service.stop()
        return EXIT_FAILED

    def request_shutdown(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        # shutdown() waits for serve_forever(), which runs in this very thread.
        threading.Thread(target=server.shutdown, name="api-shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, request_shutdown)
    signal.signal(signal.SIGINT, request_shutdown)

    logger.info("registration API listening on %s:%d", options.listen, options.api_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        service.stop()
    logger.info("edge stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
