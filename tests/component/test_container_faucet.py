"""The faucet plan run by the supervisor as a host process: real nginx, the faucet stand-in, a real relay.

Plain-HTTP mode throughout. Discovery is read through nginx as a wallet reads
it; the healthcheck runs as the image's HEALTHCHECK does, as its own process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.component.conftest import EntrypointRun, http_get, wait_until
from tests.component.probes_support import find_relay_binary, run_relay
from unicity_infra.container.services.faucet_tenant import node_key_deriver
from unicity_infra.container.status import StatusServer

pytestmark = pytest.mark.component

STANDIN_APP = Path(__file__).resolve().parent.parent / "fixtures" / "standins" / "faucet" / "app"
DISCOVERY = "/.well-known/faucet.json"
SECRET_VALUE = "component-secret-7f3a9c"
NODE = shutil.which("node")

StartEntrypoint = Callable[..., EntrypointRun]


@pytest.fixture(scope="module")
def relay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if NODE is None:
        pytest.skip("node not found on PATH; install nodejs")
    binary = find_relay_binary()
    with run_relay(binary, tmp_path_factory.mktemp("relay")) as port:
        yield f"ws://127.0.0.1:{port}"


def faucet_env(root: Path, relay_url: str, **overrides: str) -> dict[str, str]:
    secrets_dir = root / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    return {
        "FAUCET_APP_DIR": str(STANDIN_APP),
        "FAUCET_NODE_BIN": str(NODE),
        "FAUCET_TENANT_FILE": str(root / "data" / "tenant.json"),
        "FAUCET_SECRETS_DIR": str(secrets_dir),
        "UNICITY_DATA_DIR": str(root / "data" / "wallet"),
        "UNICITY_TOKENS_DIR": str(root / "data" / "tokens"),
        "UNICITY_NOSTR_RELAYS": relay_url,
        "SPHERE_NAMETAG": "component-faucet",
        "UNICITY_BACKOFF_INITIAL_S": "1",
        "UNICITY_BACKOFF_MAX_S": "2",
        **overrides,
    }


def discovery(run: EntrypointRun) -> dict[str, Any]:
    status, _, body = http_get(run.http_port, DISCOVERY)
    assert status == 200, body
    return json.loads(body)


def wait_for_discovery(run: EntrypointRun, check: Callable[[dict[str, Any]], bool], *, timeout_s: float, description: str) -> dict[str, Any]:
    def attempt() -> dict[str, Any] | None:
        if run.process.poll() is not None:
            pytest.fail(f"entrypoint exited with {run.process.returncode}; log:\n{run.log_text()}")
        document = discovery(run)
        return document if check(document) else None

    return wait_until(attempt, timeout_s=timeout_s, interval_s=0.05, description=description)


def announced_in_log(run: EntrypointRun) -> list[str]:
    keys = []
    for line in run.log_text().splitlines():
        if line.startswith("{") and '"faucet_chain_pubkey_announced"' in line:
            keys.append(json.loads(line)["chain_pubkey"])
    return keys


def start_faucet(start_entrypoint: StartEntrypoint, relay_url: str, root: Path, **overrides: str) -> EntrypointRun:
    return start_entrypoint(root=root, service="faucet", **faucet_env(root, relay_url, **overrides))


def healthcheck(run: EntrypointRun) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unicity_infra.container.healthcheck"],
        env=run.env, capture_output=True, text=True, timeout=10, check=False,
    )


def test_faucet_discovery_running_with_announced_pubkey(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    run = start_faucet(start_entrypoint, relay_url, tmp_path)

    document = wait_for_discovery(run, lambda doc: doc["status"] == "running" and doc["nametag"], timeout_s=20, description="running")

    assert announced_in_log(run) == [document["chain_pubkey"]]
    assert document["direct_address"] == f"DIRECT://{document['chain_pubkey']}"
    assert document["nametag"] == "component-faucet"
    assert document["nostr_relays"] == [relay_url]
    assert document["restart_count"] == 0
    assert run.stop() == 0


def test_faucet_discovery_headers_and_other_paths(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    run = start_faucet(start_entrypoint, relay_url, tmp_path)
    wait_for_discovery(run, lambda doc: doc["status"] == "running", timeout_s=20, description="running")

    status, headers, _ = http_get(run.http_port, DISCOVERY)
    root_status, _, root_body = http_get(run.http_port, "/")
    redirect_status, redirect_headers, _ = http_get(run.http_port, "/faucet.json")

    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Content-Type"] == "application/json"
    assert root_status == 404
    assert DISCOVERY.encode() in root_body
    assert redirect_status == 302
    assert redirect_headers["Location"].endswith(DISCOVERY)
    assert run.stop() == 0


def test_faucet_log_lines_pass_through_unchanged(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    run = start_faucet(start_entrypoint, relay_url, tmp_path)
    wait_for_discovery(run, lambda doc: doc["status"] == "running", timeout_s=20, description="running")

    pino_lines = [json.loads(line) for line in run.log_text().splitlines() if line.startswith('{"level":')]

    assert [line["msg"] for line in pino_lines][:3] == ["nostr_relays_override_active", "registering_nametag", "sphere_initialized"]
    assert all(set(line) >= {"level", "time", "ts", "component", "msg"} for line in pino_lines)
    assert run.stop() == 0


def test_faucet_crash_shows_restarting_within_two_seconds(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    run = start_faucet(start_entrypoint, relay_url, tmp_path)
    running = wait_for_discovery(run, lambda doc: doc["status"] == "running", timeout_s=20, description="running")
    flag = tmp_path / "data" / "wallet" / "standin-exit-code"

    flag.write_text("1\n")
    crashed_at = time.monotonic()
    restarting = wait_for_discovery(run, lambda doc: doc["status"] == "restarting", timeout_s=2.0, description="restarting")
    seen_after_s = time.monotonic() - crashed_at
    flag.unlink()

    assert seen_after_s < 2.0
    assert restarting["restart_count"] >= 1
    assert restarting["last_exit_code"] == 1
    assert restarting["chain_pubkey"] is None
    again = wait_for_discovery(run, lambda doc: doc["status"] == "running", timeout_s=20, description="running again")
    assert again["chain_pubkey"] == running["chain_pubkey"]
    assert again["restart_count"] >= 1
    assert run.stop() == 0


def test_faucet_same_identity_after_supervisor_restart(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    first = start_faucet(start_entrypoint, relay_url, tmp_path)
    before = wait_for_discovery(first, lambda doc: doc["status"] == "running", timeout_s=20, description="running")
    tenant = (tmp_path / "data" / "tenant.json").read_bytes()
    assert first.stop() == 0

    second = start_faucet(start_entrypoint, relay_url, tmp_path)
    after = wait_for_discovery(second, lambda doc: doc["status"] == "running", timeout_s=20, description="running after restart")

    assert after["chain_pubkey"] == before["chain_pubkey"]
    assert (tmp_path / "data" / "tenant.json").read_bytes() == tenant
    assert oct((tmp_path / "data" / "tenant.json").stat().st_mode & 0o777) == "0o600"
    assert "reusing tenant variables" in second.log_text()
    assert second.stop() == 0


def test_faucet_never_running_before_announcement(start_entrypoint: StartEntrypoint, tmp_path: Path) -> None:
    # Nothing listens on port 9, so the stand-in fails before announcing, again and again.
    run = start_faucet(start_entrypoint, "ws://127.0.0.1:9", tmp_path)
    wait_for_discovery(run, lambda doc: True, timeout_s=15, description="nginx serving discovery")

    states = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and run.process.poll() is None:
        states.append(discovery(run)["status"])
        time.sleep(0.1)

    assert "running" not in states
    assert "restarting" in states
    assert healthcheck(run).returncode == 1
    run.stop()


def test_faucet_secret_reaches_process_not_log(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "SPHERE_API_KEY").write_text(SECRET_VALUE + "\n")
    run = start_faucet(start_entrypoint, relay_url, tmp_path, FAUCET_SECRET_FILES="SPHERE_API_KEY")
    document = wait_for_discovery(run, lambda doc: doc["status"] == "running", timeout_s=20, description="running")

    health = json.loads(http_get(run.http_port, "/_ssl/health")[2])
    environ = Path(f"/proc/{health['service']['pid']}/environ").read_bytes().split(b"\0")

    assert f"SPHERE_API_KEY={SECRET_VALUE}".encode() in environ
    assert any(entry.startswith(b"UNICITY_MANAGER_PUBKEY=0") for entry in environ)
    assert SECRET_VALUE not in run.log_text()
    assert SECRET_VALUE not in json.dumps(document)
    assert run.stop() == 0


def test_faucet_missing_secret_exits_2_naming_path(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    run = start_faucet(start_entrypoint, relay_url, tmp_path, FAUCET_SECRET_FILES="SPHERE_API_KEY")

    status = run.wait_exit(timeout_s=15)

    assert status == 2
    assert str(tmp_path / "secrets" / "SPHERE_API_KEY") in run.log_text()


def test_faucet_healthcheck_follows_discovery(start_entrypoint: StartEntrypoint, relay_url: str, tmp_path: Path) -> None:
    run = start_faucet(start_entrypoint, relay_url, tmp_path)
    wait_for_discovery(run, lambda doc: doc["status"] == "running", timeout_s=20, description="running")

    healthy = healthcheck(run)
    (tmp_path / "data" / "wallet" / "standin-exit-code").write_text("1\n")
    wait_for_discovery(run, lambda doc: doc["status"] == "restarting", timeout_s=2.0, description="restarting")
    unhealthy = healthcheck(run)
    (tmp_path / "data" / "wallet" / "standin-exit-code").unlink()

    assert healthy.returncode == 0, healthy.stdout
    assert unhealthy.returncode == 1
    assert "restarting" in unhealthy.stdout
    run.stop()


def test_node_key_deriver_matches_coincurve() -> None:
    import coincurve

    if NODE is None:
        pytest.skip("node not found on PATH; install nodejs")
    private_key = coincurve.PrivateKey()

    public_key = node_key_deriver(Path(NODE))(private_key.secret.hex())

    assert public_key == private_key.public_key.format(compressed=True).hex()


def test_supervisor_pipes_stdout_to_watcher(tmp_path: Path) -> None:
    output = tmp_path / "supervisor-stdout"
    script = "import sys; print('{\"msg\":\"one\"}'); print('second line'); sys.stdout.flush()"
    # Run the supervisor in a child so its stdout can be captured as bytes.
    program = (
        "import sys, time\n"
        "from unicity_infra.container.supervisor import ProcessSpec, Supervisor\n"
        "seen = []\n"
        "supervisor = Supervisor(stop_grace_s=1)\n"
        f"supervisor.add(ProcessSpec(name='child', argv=(sys.executable, '-c', {script!r}),"
        " stdout_watcher=lambda: seen.append), primary=True)\n"
        "supervisor.start('child')\n"
        "time.sleep(1.0)\n"
        "import json; sys.stderr.write(json.dumps(seen))\n"
    )
    with output.open("wb") as handle:
        result = subprocess.run([sys.executable, "-c", program], stdout=handle, stderr=subprocess.PIPE, timeout=20, check=False)

    received = json.loads(result.stderr)
    assert output.read_bytes() == b'{"msg":"one"}\nsecond line\n'
    assert received == ['{"msg":"one"}\n', "second line\n"]


def test_status_server_serves_routes_with_headers() -> None:
    server = StatusServer(
        0,
        lambda: {"status": "ok"},
        routes={"/doc.json": (lambda: {"hello": "world"}, {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})},
    )
    server.start()
    try:
        status, headers, body = http_get(server.port, "/doc.json")
        health_status, health_headers, _ = http_get(server.port, "/_ssl/health")
        missing_status, _, missing_body = http_get(server.port, "/other")
    finally:
        server.stop()

    assert (status, json.loads(body)) == (200, {"hello": "world"})
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cache-Control"] == "no-cache"
    assert health_status == 200
    assert health_headers["Cache-Control"] == "no-store"
    assert missing_status == 404
    assert b"/doc.json" in missing_body
