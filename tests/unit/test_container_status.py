"""Unit tests of the /_ssl/health document (container/status.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from unicity_infra.container.status import build_health_document
from unicity_infra.container.supervisor import RESTARTING, RUNNING, ProcessStatus
from unicity_infra.container.tls import CertificateState

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def service(state: str, *, restarts: int = 0, last_exit_code: int | None = None) -> ProcessStatus:
    return ProcessStatus(
        name="relay",
        state=state,
        pid=1234 if state == RUNNING else None,
        restarts=restarts,
        last_exit_code=last_exit_code,
        started_at=NOW,
    )


def test_build_health_document_running_with_tls() -> None:
    certificate = CertificateState(
        domain="relay.example.org",
        cert_file=Path("/c"),
        key_file=Path("/k"),
        not_after=datetime(2027, 1, 30, 12, 0, 0, tzinfo=timezone.utc),
        days_remaining=0,
    )

    document = build_health_document(
        boot_id="b1",
        domain="relay.example.org",
        tls_active=True,
        certificate=certificate,
        service=service(RUNNING),
        upstream_port=8080,
        app_reachable=True,
        now=NOW,
    )

    assert document["status"] == "ok"
    assert document["domain"] == "relay.example.org"
    assert document["tls"] is True
    assert document["cert_expires"] == "2027-01-30T12:00:00Z"
    assert document["days_remaining"] == 60
    assert document["service"] == {
        "name": "relay",
        "state": "running",
        "pid": 1234,
        "restarts": 0,
        "last_exit_code": None,
        "started_at": "2026-12-01T12:00:00Z",
    }
    assert document["app_upstream"] == "127.0.0.1:8080"
    assert document["app_reachable"] is True
    assert document["boot_id"] == "b1"


def test_build_health_document_restarting_is_degraded() -> None:
    document = build_health_document(
        boot_id="b1",
        domain=None,
        tls_active=False,
        certificate=None,
        service=service(RESTARTING, restarts=3, last_exit_code=1),
        upstream_port=8080,
        app_reachable=False,
        now=NOW,
    )

    assert document["status"] == "degraded"
    assert document["tls"] is False
    assert document["cert_expires"] is None
    assert document["days_remaining"] is None
    assert document["service"]["restarts"] == 3
    assert document["service"]["last_exit_code"] == 1
    assert document["service"]["pid"] is None


def test_build_health_document_is_json() -> None:
    document = build_health_document(
        boot_id="b1", domain=None, tls_active=False, certificate=None, service=None,
        upstream_port=8080, app_reachable=False, now=NOW,
    )

    assert json.loads(json.dumps(document)) == document
    assert document["status"] == "degraded"
