"""Docker HEALTHCHECK: ``python3 -m unicity_infra.container.healthcheck``.

Exits 0 only when the supervisor reports the service ``running`` and the service
passes its plan's health probe (for the relay, a NIP-11 GET; for the faucet, its
discovery document saying running), else 1. The
one line it prints shows up in ``docker inspect`` as the reason.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from unicity_infra.container.config import load_config, read_port
from unicity_infra.container.errors import SupervisorError
from unicity_infra.container.services import load_plan
from unicity_infra.container.status import HEALTH_PATH

__all__ = ["HEALTHY", "UNHEALTHY", "fetch_health_document", "check_health", "main"]

HEALTHY = 0
UNHEALTHY = 1
# Docker kills the check after 4 s (the image's HEALTHCHECK timeout); two requests fit in that.
_REQUEST_TIMEOUT_S = 1.5


def fetch_health_document(port: int, *, timeout_s: float = _REQUEST_TIMEOUT_S) -> dict[str, Any]:
    """GET the supervisor's health document from 127.0.0.1:PORT.

    Raises OSError when the status server is unreachable and ValueError when its
    response is not a 200 with a JSON object.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", HEALTH_PATH)
        response = connection.getresponse()
        body = response.read(65536)
    finally:
        connection.close()

    if response.status != 200:
        raise ValueError(f"status server returned HTTP {response.status}")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("status server returned JSON that is not an object")
    return document


def check_health(environ: Mapping[str, str]) -> tuple[int, str]:
    """Return (exit status, one-line reason) for the container described by ENVIRON."""
    try:
        status_port = read_port(environ, "UNICITY_STATUS_PORT", 8081)
        document = fetch_health_document(status_port)
    except (OSError, http.client.HTTPException, ValueError, SupervisorError) as exc:
        return UNHEALTHY, f"unhealthy: supervisor status unavailable: {exc}"

    service = document.get("service") or {}
    name = service.get("name")
    state = service.get("state")
    if state != "running":
        return UNHEALTHY, f"unhealthy: service {name} is {state} (restarts={service.get('restarts')})"

    try:
        plan = load_plan(str(name), load_config(environ), environ)
    except SupervisorError as exc:
        return UNHEALTHY, f"unhealthy: {exc}"
    probe = plan.health_probe or plan.readiness_probe
    reason = probe(_REQUEST_TIMEOUT_S)
    if reason is not None:
        return UNHEALTHY, f"unhealthy: service {name} is running but {reason}"
    return HEALTHY, f"healthy: service {name} is running and answers"


def main() -> int:
    code, reason = check_health(os.environ)
    print(reason)
    return code


if __name__ == "__main__":
    sys.exit(main())
