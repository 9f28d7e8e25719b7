"""`run faucet` end to end on the real Docker Engine with the faucet stand-in, driven through the CLI.

Each test runs its own stack: the relay image in direct mode, then the faucet
wrapper built FROM the stand-in, pointed at that relay and published on a
free loopback port. Discovery is read over HTTP as a wallet reads it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import websockets.sync.client

from tests.fixtures.faucet_standin import build_faucet_standin
from tests.fixtures.pebble import free_port
from unicity_infra.engine.images import FAUCET_IMAGE_ENV, build_images
from unicity_infra.probes.nostr import generate_key, open_relay, public_key_hex, sign_event

pytestmark = pytest.mark.docker

DISCOVERY = "/.well-known/faucet.json"


@pytest.fixture(scope="session")
def faucet_image(relay_image: str) -> str:
    """Build the faucet stand-in, then the faucet wrapper FROM it, as 'images build faucet --offline' does."""
    standin = build_faucet_standin()
    previous = os.environ.get(FAUCET_IMAGE_ENV)
    os.environ[FAUCET_IMAGE_ENV] = standin
    try:
        return build_images(["faucet"], offline=True)["faucet"]
    finally:
        if previous is None:
            del os.environ[FAUCET_IMAGE_ENV]
        else:
            os.environ[FAUCET_IMAGE_ENV] = previous


class FaucetStack:
    """One test stack: its name, published ports, a secret file and a CLI wrapper."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.relay_port = free_port()
        self.faucet_port = free_port()
        self.relay_container = f"unicity-{self.name}-relay"
        self.faucet_container = f"unicity-{self.name}-faucet"
        self.secret_value = f"secret-{secrets.token_hex(16)}"
        self.secret_file = tmp_path / "api-key"
        self.secret_file.write_text(self.secret_value + "\n")
        self.backup = tmp_path / "faucet-identity.tar.gz"
        self.client = docker.from_env(version="auto")

    def cli(self, *arguments: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unicity-infra", "--stack", self.name, *arguments],
            capture_output=True, text=True, timeout=timeout_s, check=False, env={**os.environ, "NO_COLOR": "1"},
        )

    def run_relay(self) -> None:
        result = self.cli("run", "relay", "--no-haproxy", "--publish", f"127.0.0.1:{self.relay_port}")
        assert result.returncode == 0, result.stdout + result.stderr

    def run_faucet(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "run", "faucet", "--no-haproxy", "--publish", f"127.0.0.1:{self.faucet_port}", "--nametag", "docker-faucet",
            "--secret-file", f"SPHERE_API_KEY={self.secret_file}", *extra,
        )

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.relay_port}"

    @property
    def faucet_url(self) -> str:
        return f"http://127.0.0.1:{self.faucet_port}"

    def discovery(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.faucet_url + DISCOVERY, timeout=2) as response:
            return json.load(response)

    def wait_for_status(self, status: str, *, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.discovery()
            except OSError as exc:
                last = exc
            else:
                if last.get("status") == status:
                    return last
            time.sleep(0.05)
        pytest.fail(f"discovery did not show {status!r} within {timeout_s:g} s; last: {last!r}")

    def faucet_exec(self, command: list[str], *, user: str = "") -> tuple[int, str]:
        result = self.client.containers.get(self.faucet_container).exec_run(command, user=user)
        return result.exit_code, result.output.decode(errors="replace")

    def logs(self) -> str:
        return self.client.containers.get(self.faucet_container).logs(stdout=True, stderr=True).decode(errors="replace")

    def announced_pubkeys(self) -> list[str]:
        keys = []
        for line in self.logs().splitlines():
            if line.startswith("{") and '"faucet_chain_pubkey_announced"' in line:
                keys.append(json.loads(line)["chain_pubkey"])
        return keys


@pytest.fixture
def stack(relay_image: str, tmp_path: Path) -> Iterator[FaucetStack]:
    faucet_stack = FaucetStack(tmp_path)
    yield faucet_stack
    faucet_stack.cli("down", "--wipe", "--wipe-certificates")
    faucet_stack.client.close()


@pytest.fixture
def running(stack: FaucetStack, faucet_image: str) -> FaucetStack:
    """The stack with its relay and its faucet up."""
    stack.run_relay()
    result = stack.run_faucet()
    assert result.returncode == 0, result.stdout + result.stderr
    return stack


def test_run_faucet_discovery_shows_printed_pubkey(running: FaucetStack) -> None:
    document = running.discovery()

    assert document["status"] == "running"
    assert running.announced_pubkeys() == [document["chain_pubkey"]]
    assert document["direct_address"] == f"DIRECT://{document['chain_pubkey']}"
    assert document["nametag"] == "docker-faucet"
    assert document["nostr_relays"] == [f"ws://{running.relay_container}:80"]


def test_run_faucet_healthy_and_probed(running: FaucetStack) -> None:
    container = running.client.containers.get(running.faucet_container)

    result = running.cli("probe", "faucet", running.faucet_url, "--relay", running.relay_url, "--json")

    assert container.attrs["State"]["Health"]["Status"] == "healthy"
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {check["name"]: check["status"] for check in json.loads(result.stdout)["targets"][0]["checks"]}
    assert checks == {"TCP connect": "ok", "discovery": "ok", "relay DM": "ok"}


def test_faucet_container_restart_keeps_pubkey(running: FaucetStack) -> None:
    before = running.discovery()["chain_pubkey"]
    container = running.client.containers.get(running.faucet_container)

    container.restart(timeout=10)
    after = running.wait_for_status("running", timeout_s=60)

    assert after["chain_pubkey"] == before
    assert after["restart_count"] == 0


def test_faucet_crash_shows_restarting_within_two_seconds(running: FaucetStack) -> None:
    before = running.discovery()["chain_pubkey"]

    status, output = running.faucet_exec(["sh", "-c", "echo 1 > /data/wallet/standin-exit-code"])
    assert status == 0, output
    crashed_at = time.monotonic()
    restarting = running.wait_for_status("restarting", timeout_s=2.0)
    seen_after_s = time.monotonic() - crashed_at
    running.faucet_exec(["rm", "-f", "/data/wallet/standin-exit-code"])

    assert seen_after_s < 2.0
    assert restarting["restart_count"] >= 1
    assert restarting["last_exit_code"] == 1
    assert restarting["chain_pubkey"] is None
    again = running.wait_for_status("running", timeout_s=30)
    assert again["chain_pubkey"] == before


def test_faucet_secret_absent_from_inspect_history_and_logs(running: FaucetStack, faucet_image: str) -> None:
    inspect = json.dumps(running.client.api.inspect_container(running.faucet_container))
    history = subprocess.run(["docker", "history", "--no-trunc", faucet_image], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    image_inspect = json.dumps(running.client.api.inspect_image(faucet_image))

    assert running.secret_value not in inspect
    assert running.secret_value not in history
    assert running.secret_value not in image_inspect
    assert running.secret_value not in running.logs()
    assert "/run/secrets/SPHERE_API_KEY" in inspect


def test_faucet_secret_reaches_faucet_process(running: FaucetStack) -> None:
    status, pid = running.faucet_exec(["pgrep", "-f", "acp-adapter/main.js"])
    assert status == 0, pid

    # Docker drops CAP_SYS_PTRACE, so only the faucet's own user may read its environment.
    status, environ = running.faucet_exec(["cat", f"/proc/{pid.split()[0]}/environ"], user="1001")

    assert status == 0
    assert f"SPHERE_API_KEY={running.secret_value}" in environ.split("\0")


def test_faucet_tenant_file_private_and_reused(running: FaucetStack) -> None:
    status, first = running.faucet_exec(["stat", "-c", "%a %U", "/data/tenant.json"])
    assert status == 0, first
    _, content_before = running.faucet_exec(["cat", "/data/tenant.json"])

    assert running.cli("down", "faucet").returncode == 0
    assert running.run_faucet().returncode == 0
    _, content_after = running.faucet_exec(["cat", "/data/tenant.json"])

    assert first.strip() == "600 root"
    assert content_after == content_before


def test_faucet_identity_export_wipe_import_keeps_pubkey(running: FaucetStack) -> None:
    before = running.discovery()["chain_pubkey"]

    exported = running.cli("faucet", "identity", "export", str(running.backup))
    assert exported.returncode == 0, exported.stderr
    assert oct(running.backup.stat().st_mode & 0o777) == "0o600"
    assert running.cli("down", "faucet", "--wipe").returncode == 0
    imported = running.cli("faucet", "identity", "import", str(running.backup))
    assert imported.returncode == 0, imported.stderr
    result = running.run_faucet()

    assert result.returncode == 0, result.stdout + result.stderr
    assert running.discovery()["chain_pubkey"] == before


def test_faucet_identity_import_rejects_overwrite_without_force(running: FaucetStack) -> None:
    assert running.cli("faucet", "identity", "export", str(running.backup)).returncode == 0
    assert running.cli("down", "faucet").returncode == 0

    refused = running.cli("faucet", "identity", "import", str(running.backup))
    forced = running.cli("faucet", "identity", "import", str(running.backup), "--force")

    assert refused.returncode == 1
    assert "already contains a faucet identity" in refused.stderr
    assert forced.returncode == 0, forced.stderr


def test_faucet_identity_import_rejects_running_faucet(running: FaucetStack) -> None:
    assert running.cli("faucet", "identity", "export", str(running.backup)).returncode == 0

    result = running.cli("faucet", "identity", "import", str(running.backup), "--force")

    assert result.returncode == 1
    assert "down faucet" in result.stderr


def test_faucet_identity_export_rejects_existing_file(running: FaucetStack) -> None:
    running.backup.write_text("keep me")

    result = running.cli("faucet", "identity", "export", str(running.backup))

    assert result.returncode == 2
    assert running.backup.read_text() == "keep me"


def test_run_faucet_missing_relay_fails_with_log(stack: FaucetStack, faucet_image: str) -> None:
    result = stack.run_faucet("--nostr-relays", "ws://nowhere.invalid:80", "--timeout", "25")

    assert result.returncode == 1
    assert "faucet_acp_startup_failed" in result.stderr


@pytest.mark.parametrize("kind", [30078, 4, 1059, 1])
def test_relay_image_accepts_faucet_and_wallet_kinds(stack: FaucetStack, kind: int) -> None:
    stack.run_relay()
    recipient = public_key_hex(generate_key())
    tags = [["d", f"unicity:nametag:{secrets.token_hex(8)}"]] if kind == 30078 else [["p", recipient]]
    event = sign_event(generate_key(), kind=kind, content=f"kind {kind} from the relay compatibility test", tags=tags)

    with open_relay(stack.relay_url) as relay:
        accepted, message = relay.publish(event)
        stored = relay.subscribe([{"ids": [event["id"]]}])

    assert accepted, message
    assert [found["id"] for found in stored] == [event["id"]]


def test_relay_image_forwards_ephemeral_composing_kind(stack: FaucetStack) -> None:
    stack.run_relay()
    recipient = public_key_hex(generate_key())
    event = sign_event(generate_key(), kind=25050, content="composing", tags=[["p", recipient]])

    with open_relay(stack.relay_url) as listener:
        listener.subscribe([{"kinds": [25050], "#p": [recipient]}], subscription_id="composing")
        # nostr-rs-relay 0.8.12 sends no OK for ephemeral kinds (20000-29999), a gap fixed after that
        # release (scsibug/nostr-rs-relay pull request 168), so delivery to a subscriber is the proof.
        with websockets.sync.client.connect(stack.relay_url, open_timeout=10) as publisher:
            publisher.send(json.dumps(["EVENT", event]))
            received = listener.next_event("composing", timeout_s=10)
        stored = listener.subscribe([{"ids": [event["id"]]}])

    assert received["id"] == event["id"]
    assert stored == []


def test_images_build_faucet_offline_without_standin_fails_clearly(faucet_image: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != FAUCET_IMAGE_ENV}

    result = subprocess.run(["unicity-infra", "images", "build", "faucet", "--offline"], capture_output=True,
                            text=True, timeout=600, check=False, env={**env, "NO_COLOR": "1"})

    assert result.returncode == 1
    assert FAUCET_IMAGE_ENV in result.stderr
    assert "cannot be built offline" in result.stderr


def test_faucet_image_labels(faucet_image: str) -> None:
    labels = docker.from_env(version="auto").images.get(faucet_image).labels

    assert labels["org.unicity.infra.offline"] == "true"
    assert labels["org.opencontainers.image.title"] == "unicity-infra faucet"
    assert labels["org.unicity.infra.upstream.faucet"].startswith("unicity-infra-test/standin-faucet:")


class EdgeFaucetStack(FaucetStack):
    """A test stack with its own local edge: network, host ports and the directory of its CA files."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.network = f"unicity-test-edge-{self.name}"
        self.edge_ports = [free_port() for _ in range(3)]
        self.state_home = tmp_path / "state"


@pytest.fixture
def edge_stack(faucet_image: str, edge_image: str, tmp_path: Path) -> Iterator[EdgeFaucetStack]:
    """A stack with its own local edge; the stack and the edge are removed afterwards."""
    faucet_stack = EdgeFaucetStack(tmp_path)
    yield faucet_stack
    faucet_stack.cli("down", "--wipe", "--wipe-certificates")
    faucet_stack.cli("edge", "down", "--wipe")
    faucet_stack.client.close()


def test_faucet_through_local_edge_probe_green(edge_stack: EdgeFaucetStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The edge's CA files go under XDG_STATE_HOME, which the CLI reads from the environment.
    monkeypatch.setenv("XDG_STATE_HOME", str(edge_stack.state_home))
    http_port, https_port, api_port = edge_stack.edge_ports
    edge = edge_stack.cli("edge", "up", "--network", edge_stack.network, "--http-port", str(http_port),
                          "--https-port", str(https_port), "--api-port", str(api_port), "--json")
    assert edge.returncode == 0, edge.stdout + edge.stderr
    relay = edge_stack.cli("run", "relay", "--haproxy-net", edge_stack.network,
                           "--publish", f"127.0.0.1:{edge_stack.relay_port}")
    assert relay.returncode == 0, relay.stdout + relay.stderr

    run = edge_stack.cli("run", "faucet", "--domain", "faucet.unicity.localhost", "--haproxy-net", edge_stack.network,
                         "--json")
    probe = edge_stack.cli(
        "probe", "faucet", "https://faucet.unicity.localhost", "--connect", f"127.0.0.1:{https_port}",
        "--ca-file", json.loads(edge.stdout)["ca_bundle"], "--relay", edge_stack.relay_url, "--json",
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert probe.returncode == 0, probe.stdout + probe.stderr
    checks = {check["name"]: check["status"] for check in json.loads(probe.stdout)["targets"][0]["checks"]}
    assert checks["certificate chain"] == "ok"
    assert checks["discovery"] == "ok"
    assert checks["relay DM"] == "ok"
