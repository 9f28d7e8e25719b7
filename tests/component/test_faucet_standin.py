"""The faucet stand-in against the real nostr-rs-relay: its checks, its signed events, its identity.

The relay verifies every event's id and BIP-340 signature, so an accepted
event proves the stand-in's BigInt Schnorr code. The tests also verify the
stored events with coincurve and check that the relay rejects a forged one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coincurve
import pytest

from tests.component.probes_support import find_relay_binary, run_relay
from unicity_infra.probes.nostr import fetch_events, open_relay, verify_event

pytestmark = pytest.mark.component

STANDIN_MAIN = (
    Path(__file__).resolve().parent.parent / "fixtures" / "standins" / "faucet" / "app" / "dist" / "acp-adapter" / "main.js"
)
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def relay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if NODE is None:
        pytest.skip("node not found on PATH; install nodejs")
    binary = find_relay_binary()
    with run_relay(binary, tmp_path_factory.mktemp("relay")) as port:
        yield f"ws://127.0.0.1:{port}"


def manager_key() -> coincurve.PrivateKey:
    return coincurve.PrivateKey()


def standin_env(data: Path, relay_url: str, manager: coincurve.PrivateKey, **overrides: str) -> dict[str, str]:
    manager_pubkey = manager.public_key.format(compressed=True).hex()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("UNICITY_", "SPHERE_", "STANDIN_"))}
    env.update({
        "UNICITY_MANAGER_PUBKEY": manager_pubkey,
        "UNICITY_MANAGER_DIRECT_ADDRESS": f"DIRECT://{manager_pubkey}",
        "UNICITY_BOOT_TOKEN": "boot-token",
        "UNICITY_INSTANCE_ID": str(uuid.uuid4()),
        "UNICITY_INSTANCE_NAME": "component test faucet",
        "UNICITY_TEMPLATE_ID": "unicity-infra-faucet",
        "UNICITY_DATA_DIR": str(data / "wallet"),
        "UNICITY_TOKENS_DIR": str(data / "tokens"),
        "UNICITY_NOSTR_RELAYS": relay_url,
        "STANDIN_EXIT_CODE": "0",
    })
    env.update(overrides)
    return env


def run_standin(env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    assert NODE is not None
    result = subprocess.run([NODE, str(STANDIN_MAIN)], env=env, capture_output=True, text=True, timeout=60, check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, lines


def messages(lines: list[dict[str, Any]]) -> list[str]:
    return [line["msg"] for line in lines]


def announced_pubkey(lines: list[dict[str, Any]]) -> str:
    return next(line["chain_pubkey"] for line in lines if line["msg"] == "faucet_chain_pubkey_announced")


def test_standin_starts_and_prints_identity_lines(relay_url: str, tmp_path: Path) -> None:
    status, lines = run_standin(standin_env(tmp_path, relay_url, manager_key(), SPHERE_NAMETAG="@component-faucet"))

    assert status == 0, lines
    assert messages(lines)[-2:] == ["faucet_running", "standin_forced_exit"]
    pubkey = announced_pubkey(lines)
    assert len(pubkey) == 66
    assert pubkey[:2] in ("02", "03")
    initialized = next(line for line in lines if line["msg"] == "sphere_initialized")
    assert initialized["pubkey"] == pubkey[:16] + "..."
    assert initialized["direct_address"] == f"DIRECT://{pubkey}"
    verified = next(line for line in lines if line["msg"] == "nametag_verified")
    assert verified["nametag"] == "component-faucet"
    assert all(line["component"] == "faucet-acp" and "ts" in line for line in lines)


def test_standin_keeps_wallet_key_across_runs(relay_url: str, tmp_path: Path) -> None:
    env = standin_env(tmp_path, relay_url, manager_key())

    first_status, first = run_standin(env)
    second_status, second = run_standin(env)

    assert (first_status, second_status) == (0, 0)
    assert announced_pubkey(first) == announced_pubkey(second)
    assert oct((tmp_path / "wallet" / "standin-wallet.json").stat().st_mode & 0o777) == "0o600"


def test_standin_events_verify_and_reach_manager(relay_url: str, tmp_path: Path) -> None:
    manager = manager_key()
    status, lines = run_standin(standin_env(tmp_path, relay_url, manager))
    assert status == 0, lines
    author = announced_pubkey(lines)[2:]

    events = fetch_events(relay_url, [{"authors": [author]}])

    assert sorted(event["kind"] for event in events) == [4, 30078]
    assert all(verify_event(event) for event in events)
    hello = next(event for event in events if event["kind"] == 4)
    assert hello["tags"] == [["p", manager.public_key_xonly.format().hex()]]
    assert "?iv=" in hello["content"]


def test_relay_rejects_forged_signature(relay_url: str, tmp_path: Path) -> None:
    status, lines = run_standin(standin_env(tmp_path, relay_url, manager_key()))
    assert status == 0, lines
    binding = next(event for event in fetch_events(relay_url, [{"authors": [announced_pubkey(lines)[2:]], "kinds": [30078]}]))
    forged = {**binding, "sig": binding["sig"][:-2] + ("00" if binding["sig"][-2:] != "00" else "01")}

    with open_relay(relay_url) as relay:
        accepted, message = relay.publish(forged)

    assert accepted is False, message


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"UNICITY_MANAGER_PUBKEY": "02" + "00" * 32}, "UNICITY_MANAGER_PUBKEY is not a valid secp256k1 public key"),
        ({"UNICITY_MANAGER_PUBKEY": ""}, "UNICITY_MANAGER_PUBKEY is required"),
        ({"UNICITY_BOOT_TOKEN": ""}, "UNICITY_BOOT_TOKEN is required"),
        ({"UNICITY_TEMPLATE_ID": ""}, "UNICITY_TEMPLATE_ID is required"),
        ({"UNICITY_HEARTBEAT_INTERVAL_MS": "500"}, "UNICITY_HEARTBEAT_INTERVAL_MS must be at least 1000"),
        ({"UNICITY_NOSTR_RELAYS": ""}, "no relay"),
    ],
)
def test_standin_rejects_invalid_environment(relay_url: str, tmp_path: Path, overrides: dict[str, str], problem: str) -> None:
    status, lines = run_standin(standin_env(tmp_path, relay_url, manager_key(), **overrides))

    assert status == 1
    assert messages(lines) == ["faucet_acp_startup_failed"]
    assert problem in lines[0]["error"]


def test_standin_fails_when_relay_unreachable(relay_url: str, tmp_path: Path) -> None:
    status, lines = run_standin(standin_env(tmp_path, relay_url, manager_key(), UNICITY_NOSTR_RELAYS="ws://127.0.0.1:9"))

    assert status == 1
    assert messages(lines)[-1] == "faucet_acp_startup_failed"
    assert "faucet_chain_pubkey_announced" not in messages(lines)


def test_standin_exit_flag_file(relay_url: str, tmp_path: Path) -> None:
    (tmp_path / "wallet").mkdir()
    (tmp_path / "wallet" / "standin-exit-code").write_text("7\n")
    env = standin_env(tmp_path, relay_url, manager_key())
    del env["STANDIN_EXIT_CODE"]

    status, lines = run_standin(env)

    assert status == 7
    assert messages(lines)[-1] == "standin_forced_exit"
