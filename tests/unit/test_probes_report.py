"""render_text and render_json for reports that mix ok, warning and failed checks."""

from __future__ import annotations

import json

import pytest

from unicity_infra.probes.report import Check, Report, Status, render_json, render_text

OK = Check("NIP-11", Status.OK, "name='dev relay'", 0.012)
WARN = Check("certificate expiry", Status.WARN, "certificate expires in 5.0 days", 0.0)
FAIL = Check("publish event", Status.FAIL, "relay rejected kind-1 event [blocked]", 1.5)


def test_render_text_all_ok() -> None:
    text = render_text([Report("ws://127.0.0.1:7777", (OK,))], colour=False)

    assert text.splitlines() == [
        "ws://127.0.0.1:7777",
        "  ✓ NIP-11: name='dev relay' (0.01s)",
        "RESULT: all checks passed",
    ]


def test_render_text_warning_only() -> None:
    text = render_text([Report("wss://relay.test", (OK, WARN))], colour=False)

    assert "  ⚠ certificate expiry: certificate expires in 5.0 days (0.00s)" in text.splitlines()
    assert text.splitlines()[-1] == "RESULT: all critical checks passed, 1 warning(s)"


def test_render_text_failure_counts_across_reports() -> None:
    reports = [Report("wss://relay.test", (OK, WARN, FAIL)), Report("ws://127.0.0.1:7777", (FAIL,))]

    text = render_text(reports, colour=False)

    assert text.count("  ✗ publish event:") == 2
    assert text.splitlines()[-1] == "RESULT: 2 check(s) failed, 1 warning(s)"


def test_render_text_colour_marks_status_and_escapes_brackets() -> None:
    text = render_text([Report("wss://relay.test", (OK, WARN, FAIL))], colour=True)
    lines = text.splitlines()

    assert lines[1].startswith("  [green]✓[/green] NIP-11")
    assert lines[2].startswith("  [yellow]⚠[/yellow] certificate expiry")
    assert lines[3] == r"  [red]✗[/red] publish event: relay rejected kind-1 event \[blocked] (1.50s)"


@pytest.mark.parametrize(
    ("checks", "ok", "failed", "warnings"),
    [
        ((OK,), True, 0, 0),
        ((OK, WARN), True, 0, 1),
        ((OK, WARN, FAIL), False, 1, 1),
    ],
)
def test_render_json_mixtures(checks: tuple[Check, ...], ok: bool, failed: int, warnings: int) -> None:
    document = json.loads(render_json([Report("wss://relay.test", checks)]))

    assert document["ok"] is ok
    assert document["failed"] == failed
    assert document["warnings"] == warnings
    assert document["targets"][0]["target"] == "wss://relay.test"
    assert [check["status"] for check in document["targets"][0]["checks"]] == [c.status.value for c in checks]


def test_render_json_check_keys() -> None:
    document = json.loads(render_json([Report("ws://127.0.0.1:7777", (FAIL,))]))

    assert document["targets"][0]["checks"][0] == {
        "name": "publish event",
        "status": "fail",
        "detail": "relay rejected kind-1 event [blocked]",
        "seconds": 1.5,
    }
    assert document["targets"][0]["ok"] is False
