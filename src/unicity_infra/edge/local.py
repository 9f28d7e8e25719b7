"""Entry point of the local edge image: the ACME test CA, then HAProxy and its API.

``python3 -m unicity_infra.edge.local`` starts Pebble (unless EDGE_LOCAL_CA=false),
advertises its directory and CA files through ``GET /v1/edge``, and then runs
``python3 -m unicity_infra.edge`` in this process until SIGTERM.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from unicity_infra.edge import __main__ as edge_main
from unicity_infra.edge.local_ca import LocalCA, LocalCAError, own_address, start_local_ca

__all__ = ["main"]

logger = logging.getLogger("unicity_infra.edge.local")

WATCH_INTERVAL_S = 2.0


def _listener_names() -> list[str]:
    """Return the names in the certificate of Pebble's own HTTPS listener, the edge's aliases first."""
    aliases = [name.strip() for name in os.environ.get("EDGE_ALIASES", "haproxy").split(",") if name.strip()]
    return [*aliases, "localhost", "127.0.0.1"]


def _watch(ca_holder: list[LocalCA], start: Callable[[], LocalCA], stop: threading.Event) -> None:
    """Restart the local CA when Pebble or challtestsrv exits, counting restarts."""
    restarts = 0
    while not stop.wait(WATCH_INTERVAL_S):
        failed = ca_holder[0].failed_process()
        if failed is None:
            continue
        restarts += 1
        logger.error("%s exited with status %s; restarting the local CA restart=%d",
                     failed.args[0], failed.returncode, restarts)
        ca_holder[0].stop()
        try:
            ca_holder[0] = start()
        except LocalCAError as exc:
            logger.error("restarting the local CA failed: %s", exc)
            time.sleep(min(60.0, 2.0 ** restarts))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("EDGE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    state_dir = Path(os.environ.get("EDGE_STATE_DIR", "/var/lib/unicity-edge"))
    state_dir.mkdir(parents=True, exist_ok=True)
    arguments = list(argv or [])

    if os.environ.get("EDGE_LOCAL_CA", "true").lower() == "false":
        return edge_main.main(arguments)

    validity = os.environ.get("EDGE_CERTIFICATE_VALIDITY_S")

    def start() -> LocalCA:
        return start_local_ca(
            state_dir,
            answer_ipv4=os.environ.get("EDGE_ANSWER_IPV4") or own_address(),
            listener_names=_listener_names(),
            http_port=int(os.environ.get("EDGE_HTTP_PORT", "80")),
            certificate_validity_s=int(validity) if validity else None,
        )

    try:
        ca_holder = [start()]
    except LocalCAError as exc:
        logger.error("local ACME CA failed to start: %s", exc)
        return 1

    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(ca_holder, start, stop), name="local-ca-watch", daemon=True)
    watcher.start()
    arguments += [
        "--acme-directory", ca_holder[0].directory_url,
        "--ca-bundle-path", str(ca_holder[0].roots_file),
        "--acme-ca-file", str(ca_holder[0].listener_ca_file),
    ]
    try:
        return edge_main.main(arguments)
    finally:
        stop.set()
        ca_holder[0].stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
