"""The supervisor entrypoint as a host process: real nginx, real signals, the relay stand-in.

Plain-HTTP mode (no SSL_DOMAIN) throughout; TLS is covered in test_supervisor_tls.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.component.conftest import FAKE_RELAY_STANDIN, EntrypointRun, http_get, wait_until

pytestmark = pytest.mark.component

StartEntrypoint = Callable[..., EntrypointRun]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_supervisor_stop_signal_stops_nginx_first(start_entrypoint: StartEntrypoint, signum: int) -> None:
    run = start_entrypoint()
    run.wait_running()

    status = run.stop(signum)

    log = run.log_text()
    assert status == 0, log
    assert "sigterm pid=" in "\n".join(run.events())
    # The stand-in checks the nginx port when SIGTERM reaches it: nginx must be gone by then.
    assert any("sigterm" in line and "front_port_open=False" in line for line in run.events()), run.events()
    assert log.index("stopped nginx") < log.index("stopping relay"), log


def test_supervisor_exit_code_of_service_after_stop(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(STANDIN_EXIT_ON_TERM="3")
    run.wait_running()

    status = run.stop()

    assert status == 3, run.log_text()


def test_supervisor_kills_service_after_grace(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(STANDIN_IGNORE_TERM="1", UNICITY_STOP_GRACE_S="1")
    run.wait_running()

    started = time.monotonic()
    status = run.stop()
    elapsed_s = time.monotonic() - started

    assert status == 128 + signal.SIGKILL, run.log_text()
    assert elapsed_s < 4.0
    assert "did not stop within" in run.log_text()


def test_supervisor_restarts_crashed_service_with_backoff(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(STANDIN_CRASH_AFTER_S="0.3", STANDIN_CRASH_CODE="7")

    # Restarts are visible over HTTP through nginx, which keeps serving meanwhile.
    document = run.wait_for_health(lambda doc: doc["service"]["restarts"] >= 4, timeout_s=20, description="4 restarts")

    assert document["service"]["last_exit_code"] == 7
    assert document["service"]["state"] in {"starting", "running", "restarting"}
    starts = wait_until(lambda: run.event_times("start") if len(run.event_times("start")) >= 5 else None, timeout_s=5, description="5 starts")
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # Each gap is 0.3 s of running plus the backoff: 0.2, 0.4, 0.8, then capped at 0.8 s.
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert gaps[1] >= 0.3 + 0.4 - 0.05, gaps
    assert gaps[2] >= 0.3 + 0.8 - 0.05, gaps
    assert gaps[3] < 0.3 + 0.8 + 1.0, gaps
    # Stopped while running the status is 0; stopped during a backoff it is the last crash's.
    assert run.stop() in {0, 7}


def test_supervisor_health_degraded_while_restarting(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(
        STANDIN_CRASH_AFTER_S="0.3", STANDIN_CRASH_CODE="5", UNICITY_BACKOFF_INITIAL_S="3", UNICITY_BACKOFF_MAX_S="3"
    )

    document = run.wait_for_health(lambda doc: doc["service"]["state"] == "restarting", description="restarting state")

    assert document["status"] == "degraded"
    assert document["service"]["pid"] is None
    assert document["app_reachable"] is False
    # Stopped during the backoff, the supervisor reports the crash's status.
    assert run.stop() == 5


def test_supervisor_restarts_nginx(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint()
    run.wait_running()
    nginx_pid = int((run.root / "run" / "nginx" / "nginx.pid").read_text())

    # nginx leads its own process group, so this takes down its workers too.
    os.killpg(nginx_pid, signal.SIGKILL)

    wait_until(lambda: "nginx exited with status 137" in run.log_text(), timeout_s=10, description="nginx exit noticed")
    document = run.wait_running()
    assert document["status"] == "ok"
    new_pid = int((run.root / "run" / "nginx" / "nginx.pid").read_text())
    assert new_pid != nginx_pid
    assert run.stop() == 0


def test_supervisor_proxies_nip11_over_http(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint()
    run.wait_running()

    status, headers, body = http_get(run.http_port, "/", headers={"Accept": "application/nostr+json"})

    assert status == 200
    assert b"fake relay stand-in" in body
    assert run.stop() == 0


def test_supervisor_writes_relay_config(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(RELAY_NAME="component relay")
    run.wait_running()

    config = (run.root / "run" / "relay" / "config.toml").read_text()

    assert 'name = "component relay"' in config
    assert f"port = {run.service_port}" in config
    assert run.stop() == 0


def test_supervisor_invalid_environment_exits_2(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(SSL_HTTPS_PORT="https")

    status = run.wait_exit(timeout_s=10)

    assert status == 2
    assert "invalid value for SSL_HTTPS_PORT: 'https'" in run.log_text()


def test_supervisor_missing_service_binary_exits_1(start_entrypoint: StartEntrypoint, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-relay"
    run = start_entrypoint(RELAY_BINARY=str(missing))

    status = run.wait_exit(timeout_s=10)

    assert status == 1
    assert f"relay not found at {missing}" in run.log_text()


def test_supervisor_http_port_taken_exits_1(start_entrypoint: StartEntrypoint) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        run = start_entrypoint(UNICITY_HTTP_PORT=str(squatter.getsockname()[1]))

        status = run.wait_exit(timeout_s=30)

    assert status == 1
    assert "nginx did not listen on port" in run.log_text()
    assert run.events() == []


@pytest.fixture()
def shared_root() -> Iterator[Path]:
    """A directory that uid 1001 can enter, unlike pytest's private tmp_path."""
    root = Path(tempfile.mkdtemp(prefix="unicity-supervisor-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners and user ids needs root")
def test_supervisor_runs_relay_as_uid_1001(start_entrypoint: StartEntrypoint, shared_root: Path) -> None:
    data_dir = shared_root / "relay-data"
    data_dir.mkdir()
    (data_dir / "old.db").write_text("from an earlier run as root")
    events_dir = shared_root / "events"
    events_dir.mkdir(mode=0o777)
    events_dir.chmod(0o777)
    if not os.access(FAKE_RELAY_STANDIN, os.R_OK | os.X_OK):  # pragma: no cover - checkout permissions
        pytest.skip(f"{FAKE_RELAY_STANDIN} is not readable by others")

    run = start_entrypoint(
        root=shared_root,
        UNICITY_SERVICE_UID="",
        UNICITY_SERVICE_GID="",
        RELAY_DATA_DIR=str(data_dir),
        STANDIN_EVENTS_FILE=str(events_dir / "events.log"),
    )
    run.wait_running()

    [start] = [line for line in run.events() if line.startswith("start ")]
    assert re.search(r"\buid=1001 gid=1001\b", start), start
    assert data_dir.stat().st_uid == 1001
    assert (data_dir / "old.db").stat().st_uid == 1001
    assert run.stop() == 0
