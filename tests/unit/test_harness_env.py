"""Harness variables: names the SDK reads, explicit verification, trust-base guard, formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from unicity_infra.harness.env import (
    StackEndpoints,
    TrustBaseExportError,
    harness_variables,
    render_variables,
)

PUBKEY = "02" + "ab" * 32


@pytest.fixture
def trust_base_file(tmp_path: Path) -> Path:
    path = tmp_path / "trust-base.json"
    path.write_text(json.dumps({"version": 1, "networkId": 3, "rootNodes": []}))
    return path


def _full_stack(trust_base_file: Path, **overrides: object) -> StackEndpoints:
    fields: dict[str, object] = {
        "mode": "direct",
        "relay_url": "ws://127.0.0.1:7777",
        "aggregator_url": "http://127.0.0.1:3000",
        "faucet_url": "http://127.0.0.1:8080",
        "faucet_chain_pubkey": PUBKEY,
        "faucet_direct_address": f"DIRECT://{PUBKEY}",
        "trust_base_url": "http://127.0.0.1:3000/.well-known/trust-base.json",
        "trust_base_path": str(trust_base_file),
        "network_id": 3,
    }
    fields.update(overrides)
    return StackEndpoints(**fields)  # type: ignore[arg-type]


def test_harness_variables_names_sdk_reads(trust_base_file: Path) -> None:
    variables = harness_variables(_full_stack(trust_base_file))

    assert variables["SPHERE_NOSTR_RELAYS"] == "ws://127.0.0.1:7777"
    assert variables["E2E_LOCAL_FAUCET_PUBKEY"] == PUBKEY
    assert variables["SPHERE_AGGREGATOR_URL"] == "http://127.0.0.1:3000"
    assert variables["SPHERE_TRUST_BASE_PATH"] == str(trust_base_file)
    assert variables["SPHERE_TRUSTBASE_URL"].endswith("/.well-known/trust-base.json")


def test_harness_variables_verification_explicitly_false(trust_base_file: Path) -> None:
    variables = harness_variables(_full_stack(trust_base_file))

    assert variables["SPHERE_ORACLE_SKIP_VERIFICATION"] == "false"
    assert variables["SPHERE_AGGREGATOR_SKIP_VERIFICATION"] == "false"


def test_harness_variables_ca_bundle_only_when_given(trust_base_file: Path) -> None:
    assert "NODE_EXTRA_CA_CERTS" not in harness_variables(_full_stack(trust_base_file))
    with_ca = harness_variables(_full_stack(trust_base_file, mode="local-edge", ca_bundle="/x/ca.pem"))
    assert with_ca["NODE_EXTRA_CA_CERTS"] == "/x/ca.pem"


def test_harness_variables_relay_only() -> None:
    variables = harness_variables(StackEndpoints(mode="direct", relay_url="ws://127.0.0.1:7777"))

    assert set(variables) == {"SPHERE_NOSTR_RELAYS", "UNICITY_NOSTR_RELAYS", "E2E_LOCAL_INFRA"}


def test_harness_variables_missing_trust_base_fails(tmp_path: Path) -> None:
    with pytest.raises(TrustBaseExportError, match="cannot be read"):
        harness_variables(_full_stack(tmp_path / "absent.json"))


def test_harness_variables_unparsable_trust_base_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    with pytest.raises(TrustBaseExportError, match="not valid JSON"):
        harness_variables(_full_stack(broken))


def test_harness_variables_other_network_fails(trust_base_file: Path) -> None:
    with pytest.raises(TrustBaseExportError, match="network 3, but the running genesis is network 4"):
        harness_variables(_full_stack(trust_base_file, network_id=4))


def test_render_variables_shell_round_trips_through_sh() -> None:
    variables = {"PLAIN": "ws://127.0.0.1:7777", "TRICKY": "a b'c\"$HOME"}
    script = render_variables(variables, output_format="shell") + 'printf "%s|%s" "$PLAIN" "$TRICKY"'

    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout

    assert output == "ws://127.0.0.1:7777|a b'c\"$HOME"


def test_render_variables_dotenv_quotes_only_when_needed() -> None:
    rendered = render_variables({"A": "ws://127.0.0.1:7777", "B": "two words"}, output_format="dotenv")

    assert rendered == 'A=ws://127.0.0.1:7777\nB="two words"\n'


def test_render_variables_json() -> None:
    assert json.loads(render_variables({"A": "1"}, output_format="json")) == {"A": "1"}


def test_render_variables_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render_variables({}, output_format="yaml")
