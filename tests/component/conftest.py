"""Shared fixtures of the component tests: free ports, process cleanup, the entrypoint as a host process.

Every process a test starts through these fixtures is killed in teardown, with
its whole process group, even when the test fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
FAKE_RELAY_STANDIN = FIXTURES_DIR / "fake_relay_standin.py"

T = TypeVar("T")


def pick_free_ports(count: int) -> list[int]:
    """Return COUNT distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def wait_until(check: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.1, description: str = "condition") -> T:
    """Call CHECK until it returns something other than None or False; fail the test after TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - a check may fail while the server is still starting
            last_error = exc
        else:
            if result is not None and result is not False:
                return result
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {description} (last error: {last_error!r})")


def http_get(port: int, path: str, *, headers: dict[str, str] | None = None, timeout_s: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """GET http://127.0.0.1:PORT/PATH and return (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def descendant_pids(pid: int) -> list[int]:
    """Return the pids of every live descendant of PID, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in field 2 may contain spaces, so split after its closing parenthesis.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))

    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


class ProcessReaper:
    """Keeps every process a test starts and stops it, and all its descendants, at teardown.

    A supervisor under test starts its own children in new sessions, so killing
    its process group would not reach them; the reaper walks /proc instead.
    """

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def track(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                continue
            descendants = descendant_pids(process.pid)
            # A polite stop first, so a supervisor can stop its children in order.
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            for pid in [process.pid, *descendants]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@pytest.fixture()
def process_reaper() -> Iterator[ProcessReaper]:
    reaper = ProcessReaper()
    yield reaper
    reaper.kill_all()


@dataclass
class EntrypointRun:
    """The supervisor entrypoint running as a host process, with its ports and files."""

    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    http_port: int
    https_port: int
    status_port: int
    service_port: int
    log_file: Path
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def cert_root(self) -> Path:
        return Path(self.env["SSL_CERT_ROOT"])

    @property
    def webroot(self) -> Path:
        return Path(self.env["UNICITY_WEBROOT"])

    @property
    def events_file(self) -> Path:
        return Path(self.env["STANDIN_EVENTS_FILE"])

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def events(self) -> list[str]:
        """Return the lifecycle lines the relay stand-in wrote, without their timestamps."""
        if not self.events_file.exists():
            return []
        return [line.split(" ", 1)[1] for line in self.events_file.read_text().splitlines()]

    def event_times(self, event: str) -> list[float]:
        if not self.events_file.exists():
            return []
        lines = [line.split(" ") for line in self.events_file.read_text().splitlines()]
        return [float(parts[0]) for parts in lines if parts[1] == event]

    def health_via_nginx(self) -> dict[str, Any]:
        status, _, body = http_get(self.http_port, "/_ssl/health")
        assert status == 200, f"/_ssl/health returned HTTP {status}"
        return json.loads(body)

    def wait_for_health(self, check: Callable[[dict[str, Any]], bool], *, timeout_s: float = 15.0, description: str) -> dict[str, Any]:
        """Poll /_ssl/health through nginx until CHECK accepts the document."""

        def attempt() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                pytest.fail(f"entrypoint exited with {self.process.returncode}; log:\n{self.log_text()}")
            document = self.health_via_nginx()
            return document if check(document) else None

        return wait_until(attempt, timeout_s=timeout_s, description=description)

    def wait_running(self, *, timeout_s: float = 15.0) -> dict[str, Any]:
        return self.wait_for_health(lambda doc: doc["service"]["state"] == "running", timeout_s=timeout_s, description="service running")

    def stop(self, signum: int = signal.SIGTERM, *, timeout_s: float = 20.0) -> int:
        """Send SIGNUM to the entrypoint and return its exit status."""
        self.process.send_signal(signum)
        return self.wait_exit(timeout_s=timeout_s)

    def wait_exit(self, *, timeout_s: float = 20.0) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"entrypoint did not exit within {timeout_s:g} s; log:\n{self.log_text()}")


def _port_or_zero(value: str) -> int:
    """Return VALUE as a port, or 0 for the invalid values that bad-input tests pass."""
    return int(value) if value.isdigit() else 0


def base_entrypoint_env(root: Path, ports: list[int]) -> dict[str, str]:
    """Return an environment that runs the relay plan with the stand-in, unprivileged paths and ports PORTS."""
    http_port, https_port, status_port, service_port = ports
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SSL_", "UNICITY_", "RELAY_", "STANDIN_"))}
    env.update(
        {
            "SSL_CERT_ROOT": str(root / "letsencrypt"),
            "UNICITY_RUN_DIR": str(root / "run"),
            "UNICITY_WEBROOT": str(root / "www"),
            "UNICITY_HTTP_PORT": str(http_port),
            "UNICITY_HTTPS_PORT": str(https_port),
            "UNICITY_STATUS_PORT": str(status_port),
            "UNICITY_LISTEN_ADDRESS": "127.0.0.1",
            # nginx applies "user" only when started as root; a test runner's own user keeps files readable.
            "UNICITY_NGINX_USER": pwd.getpwuid(os.getuid()).pw_name,
            "UNICITY_SERVICE_UID": str(os.getuid()),
            "UNICITY_SERVICE_GID": str(os.getgid()),
            "UNICITY_BACKOFF_INITIAL_S": "0.2",
            "UNICITY_BACKOFF_MAX_S": "0.8",
            "UNICITY_BACKOFF_RESET_S": "30",
            "UNICITY_STOP_GRACE_S": "5",
            "UNICITY_LOG_LEVEL": "DEBUG",
            "RELAY_PORT": str(service_port),
            "RELAY_DATA_DIR": str(root / "relay-data"),
            "RELAY_BINARY": str(FAKE_RELAY_STANDIN),
            "STANDIN_EVENTS_FILE": str(root / "standin-events.log"),
            "STANDIN_FRONT_PORT": str(http_port),
        }
    )
    return env


@pytest.fixture()
def start_entrypoint(tmp_path: Path, process_reaper: ProcessReaper) -> Callable[..., EntrypointRun]:
    """Return a function that starts ``python3 -m unicity_infra.container.entrypoint relay``.

    Keyword arguments become environment variables on top of ``base_entrypoint_env``;
    ``root`` reuses a directory from an earlier start (for restart tests).
    """
    counter = 0

    def start(*, root: Path | None = None, service: str = "relay", **overrides: str) -> EntrypointRun:
        nonlocal counter
        counter += 1
        run_root = root or tmp_path
        ports = pick_free_ports(4)
        env = base_entrypoint_env(run_root, ports)
        env.update(overrides)
        log_file = tmp_path / f"entrypoint-{counter}.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "unicity_infra.container.entrypoint", service],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process_reaper.track(process)
        return EntrypointRun(
            root=run_root,
            env=env,
            process=process,
            # Read back from the environment, because OVERRIDES may replace a picked port.
            http_port=_port_or_zero(env["UNICITY_HTTP_PORT"]),
            https_port=_port_or_zero(env["UNICITY_HTTPS_PORT"]),
            status_port=_port_or_zero(env["UNICITY_STATUS_PORT"]),
            service_port=_port_or_zero(env["RELAY_PORT"]),
            log_file=log_file,
        )

    return start
