"""`run relay` end to end on the real Docker Engine, driven through the CLI as a user would."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.fixtures.pebble import free_port
from unicity_infra.probes.nostr import (
    fetch_events,
    generate_key,
    open_relay,
    public_key_hex,
    publish_many,
    sign_event,
)

pytestmark = pytest.mark.docker

DOMAIN = "relay.test"



class RelayStack:
    """One test stack: its name, published port and CLI wrapper."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.container = f"unicity-{self.name}-relay"
        self.cert_file = tmp_path / "relay-cert.pem"

    def cli(self, *arguments: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unicity-infra", "--stack", self.name, *arguments],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )

    def run_relay(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("run", "relay", "--no-haproxy", "--ssl-test-mode", "--domain", DOMAIN,
                        "--publish", f"127.0.0.1:{self.port}", *extra)

    @property
    def url(self) -> str:
        return f"wss://{DOMAIN}:{self.port}"

    @property
    def connect(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def save_certificate(self) -> Path:
        client = docker.from_env(version="auto")
        output = client.containers.get(self.container).exec_run(
            ["cat", f"/etc/letsencrypt/live/{DOMAIN}/fullchain.pem"]
        ).output
        self.cert_file.write_bytes(output)
        return self.cert_file


@pytest.fixture
def stack(relay_image: str, tmp_path: Path) -> Iterator[RelayStack]:
    relay_stack = RelayStack(tmp_path)
    yield relay_stack
    relay_stack.cli("down", "--wipe", "--wipe-certificates")


def _certificate_serial(stack: RelayStack) -> str:
    client = docker.from_env(version="auto")
    result = client.containers.get(stack.container).exec_run(
        ["openssl", "x509", "-noout", "-serial", "-in", f"/etc/letsencrypt/live/{DOMAIN}/fullchain.pem"]
    )
    return result.output.decode().strip()


def test_run_relay_probes_green_through_tls(stack: RelayStack) -> None:
    result = stack.run_relay("--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    checks = {check["name"]: check["status"] for target in document["probes"]["targets"] for check in target["checks"]}
    assert checks, "the run printed no probe results"
    assert set(checks.values()) == {"ok"}, checks


def test_run_relay_terminal_output_ends_with_green_result(stack: RelayStack) -> None:
    result = stack.run_relay()

    assert result.returncode == 0, result.stderr
    assert "using offline image" in result.stderr
    assert "RESULT: all checks passed" in result.stderr


def test_probe_relay_cli_with_container_certificate(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    cert = stack.save_certificate()

    result = stack.cli("probe", "relay", stack.url, "--connect", f"127.0.0.1:{stack.port}", "--ca-file", str(cert))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout


def test_events_survive_down_and_wipe_removes_them(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    cert = stack.save_certificate()
    ids = publish_many(stack.url, 100, connect=stack.connect, ca_file=cert)
    assert len(ids) == 100

    assert stack.cli("down").returncode == 0
    assert stack.run_relay().returncode == 0
    kept = fetch_events(stack.url, [{"ids": ids}], connect=stack.connect, ca_file=cert)
    assert len(kept) == 100

    wipe = stack.cli("down", "--wipe")
    assert wipe.returncode == 0
    assert (f"kept 1 certificate volume(s): unicity-{stack.name}-relay-letsencrypt; add --wipe-certificates"
            in wipe.stderr)
    assert stack.run_relay().returncode == 0
    wiped = fetch_events(stack.url, [{"ids": ids}], connect=stack.connect, ca_file=cert)
    assert wiped == []


def test_recreated_container_reuses_certificate(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    first_serial = _certificate_serial(stack)

    assert stack.cli("down").returncode == 0
    assert stack.run_relay().returncode == 0

    assert _certificate_serial(stack) == first_serial


def test_run_again_unchanged_changes_nothing(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    client = docker.from_env(version="auto")
    first_id = client.containers.get(stack.container).id

    again = stack.run_relay("--json")

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False
    assert client.containers.get(stack.container).id == first_id


def test_run_with_changed_setting_recreates(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    client = docker.from_env(version="auto")
    first_id = client.containers.get(stack.container).id

    changed = stack.run_relay("--json", "--ssl-required", "false")

    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["changed"] is True
    assert client.containers.get(stack.container).id != first_id


def test_docker_stop_exits_cleanly_within_grace(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    container = docker.from_env(version="auto").containers.get(stack.container)

    started = time.monotonic()
    container.stop(timeout=10)
    elapsed = time.monotonic() - started
    container.reload()

    assert container.attrs["State"]["ExitCode"] == 0
    assert elapsed < 10


def test_data_dir_owned_by_other_uid_is_fixed(stack: RelayStack) -> None:
    client = docker.from_env(version="auto")
    volume = f"{stack.container}-data"
    client.volumes.create(volume, labels={
        "org.unicity.infra.managed": "true", "org.unicity.infra.stack": stack.name,
        "org.unicity.infra.service": "relay", "org.unicity.infra.role": "data",
    })
    image = client.images.get(f"unicity-infra/relay:{_version()}")
    spoiler = client.containers.create(
        image.id, entrypoint=["sh", "-c", "touch /var/lib/relay/nostr.db && chown -R 4242:4242 /var/lib/relay && chmod 700 /var/lib/relay"],
        volumes={volume: {"bind": "/var/lib/relay", "mode": "rw"}}, user="root",
        labels={"org.unicity.infra.test": "1"},
    )
    try:
        spoiler.start()
        assert spoiler.wait(timeout=60)["StatusCode"] == 0
    finally:
        # v=True: the image declares VOLUME /etc/letsencrypt, whose anonymous volume would stay behind.
        spoiler.remove(force=True, v=True)

    result = stack.run_relay()

    assert result.returncode == 0, result.stderr
    cert = stack.save_certificate()
    assert len(publish_many(stack.url, 1, connect=stack.connect, ca_file=cert)) == 1


def test_status_lists_relay_with_certificate_days(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0

    result = stack.cli("status", "--json")

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["containers"]
    assert [row["container"] for row in rows] == [stack.container]
    assert rows[0]["health"] == "healthy"
    assert rows[0]["certificate_days_left"] >= 80


def test_down_twice_is_harmless(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    assert stack.cli("down").returncode == 0

    second = stack.cli("down")

    assert second.returncode == 0
    assert "nothing to remove" in second.stderr


def test_run_refuses_foreign_container_of_same_name(stack: RelayStack) -> None:
    client = docker.from_env(version="auto")
    foreign = client.containers.create(f"unicity-infra/relay:{_version()}", name=stack.container,
                                       labels={"org.unicity.infra.test": "1"})
    try:
        result = stack.run_relay()
    finally:
        foreign.remove(force=True, v=True)

    assert result.returncode == 1
    assert "was not created by unicity-infra" in result.stderr


@pytest.mark.slow
def test_idle_subscription_survives_90_seconds(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    cert = stack.save_certificate()
    author = generate_key()
    options = {"connect": stack.connect, "ca_file": cert, "timeout_s": 10.0}

    with open_relay(stack.url, **options) as listener:
        listener.subscribe([{"kinds": [1], "authors": [public_key_hex(author)]}], subscription_id="idle")
        time.sleep(90)
        event = sign_event(author, kind=1, content="after 90 s of silence")
        with open_relay(stack.url, **options) as publisher:
            accepted, message = publisher.publish(event)
        received = listener.next_event("idle", timeout_s=10)

    assert accepted, message
    assert received["id"] == event["id"]


def _version() -> str:
    from unicity_infra import __version__

    return __version__


def test_run_with_missing_image_creates_nothing(stack: RelayStack) -> None:
    client = docker.from_env(version="auto")

    result = stack.run_relay("--image", "unicity-infra-test/missing:1")

    assert result.returncode != 0
    assert "image 'unicity-infra-test/missing:1' not found locally; nothing was created" in result.stderr
    assert "unicity-infra images build relay" in result.stderr
    stack_filter = {"label": f"org.unicity.infra.stack={stack.name}"}
    assert client.volumes.list(filters=stack_filter) == []
    assert client.networks.list(filters=stack_filter) == []
    assert client.containers.list(all=True, filters=stack_filter) == []
