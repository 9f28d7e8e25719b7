"""Check results and their rendering for terminals and for ``--json``.

Probes return :class:`Check` values; only ``cli.py`` prints the rendered text.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum

__all__ = ["Status", "Check", "Report", "render_text", "render_json"]


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


_SYMBOL = {Status.OK: "✓", Status.WARN: "⚠", Status.FAIL: "✗"}
_COLOUR = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}


@dataclass(frozen=True)
class Check:
    """The outcome of one check, with the time it took in seconds."""

    name: str
    status: Status
    detail: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Report:
    """The checks of one probe run against one target."""

    target: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> int:
        return sum(check.status is Status.FAIL for check in self.checks)

    @property
    def warnings(self) -> int:
        return sum(check.status is Status.WARN for check in self.checks)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def _summary(reports: list[Report]) -> str:
    failed = sum(report.failed for report in reports)
    warnings = sum(report.warnings for report in reports)
    if failed:
        return f"RESULT: {failed} check(s) failed, {warnings} warning(s)"
    if warnings:
        return f"RESULT: all critical checks passed, {warnings} warning(s)"
    return "RESULT: all checks passed"


def render_text(reports: list[Report], *, colour: bool) -> str:
    """Render REPORTS as ✓/⚠/✗ lines with rich markup when COLOUR is true, plain otherwise."""
    lines: list[str] = []
    for report in reports:
        lines.append(f"{report.target}")
        for check in report.checks:
            symbol = _SYMBOL[check.status]
            text = f"{check.name}: {check.detail} ({check.seconds:.2f}s)"
            if colour:
                colour_name = _COLOUR[check.status]
                lines.append(f"  [{colour_name}]{symbol}[/{colour_name}] {_escape(text)}")
            else:
                lines.append(f"  {symbol} {text}")
    lines.append(_summary(reports))
    return "\n".join(lines)


def render_json(reports: list[Report]) -> str:
    """Render REPORTS as one JSON document with keys ``ok``, ``failed``, ``warnings`` and ``targets``."""
    document = {
        "ok": all(report.ok for report in reports),
        "failed": sum(report.failed for report in reports),
        "warnings": sum(report.warnings for report in reports),
        "targets": [
            {
                "target": report.target,
                "ok": report.ok,
                "checks": [{**asdict(check), "status": check.status.value} for check in report.checks],
            }
            for report in reports
        ],
    }
    return json.dumps(document, indent=2)


def _escape(text: str) -> str:
    # rich treats [word] as markup; escape opening brackets in free text.
    return text.replace("[", r"\[")
