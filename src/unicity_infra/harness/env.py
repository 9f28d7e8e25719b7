"""The stack as the SDK's test suites read it: endpoints and their environment variables.

The wallet SDK silently falls back to its built-in trust base when the file it is
given is missing or unreadable. So the export checks the file first and fails
loudly, rather than hand a suite a path it would ignore.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from unicity_infra.errors import InfraError

__all__ = ["StackEndpoints", "TrustBaseExportError", "FORMATS", "harness_variables", "render_variables",
           "check_trust_base_file"]

FORMATS = ("dotenv", "shell", "json")


class TrustBaseExportError(InfraError):
    """The trust-base file to export is missing, unreadable or of another network."""


@dataclass(frozen=True)
class StackEndpoints:
    """Every endpoint of a running stack; None where that service is not running."""

    mode: str
    relay_url: str | None = None
    aggregator_url: str | None = None
    faucet_url: str | None = None
    faucet_chain_pubkey: str | None = None
    faucet_direct_address: str | None = None
    trust_base_url: str | None = None
    trust_base_path: str | None = None
    network_id: int | None = None
    ca_bundle: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def check_trust_base_file(path: str | Path, *, expected_network_id: int | None) -> None:
    """Raise TrustBaseExportError unless PATH parses as a trust base of EXPECTED_NETWORK_ID."""
    location = Path(path)
    try:
        document = json.loads(location.read_bytes())
    except OSError as exc:
        raise TrustBaseExportError(
            f"trust-base file {location} cannot be read ({exc.strerror}); the SDK would silently use its "
            "built-in trust base instead. Run 'unicity-infra trust-base export --out FILE' and point at that file"
        ) from exc
    except json.JSONDecodeError as exc:
        raise TrustBaseExportError(
            f"trust-base file {location} is not valid JSON ({exc.msg} at line {exc.lineno}); the SDK would "
            "silently use its built-in trust base instead. Export it again with 'unicity-infra trust-base export'"
        ) from exc
    if not isinstance(document, dict) or not isinstance(document.get("networkId"), int):
        raise TrustBaseExportError(f"trust-base file {location} has no integer networkId; it is not a trust base")
    if expected_network_id is not None and document["networkId"] != expected_network_id:
        raise TrustBaseExportError(
            f"trust-base file {location} is for network {document['networkId']}, but the running genesis is "
            f"network {expected_network_id}; export the running stack's trust base again"
        )


def harness_variables(endpoints: StackEndpoints) -> dict[str, str]:
    """Return the variables the SDK's e2e suites and the faucet read, in a stable order.

    Both skip-verification switches are set to false explicitly whenever a trust
    base is supplied: js-faucet turns verification off by default as soon as an
    aggregator URL is set.

    Raises TrustBaseExportError when a trust-base path is given but unusable.
    """
    variables: dict[str, str] = {}
    if endpoints.relay_url:
        variables["SPHERE_NOSTR_RELAYS"] = endpoints.relay_url
        variables["UNICITY_NOSTR_RELAYS"] = endpoints.relay_url
        variables["E2E_LOCAL_INFRA"] = "1"
    if endpoints.faucet_chain_pubkey:
        variables["E2E_LOCAL_FAUCET_PUBKEY"] = endpoints.faucet_chain_pubkey
    if endpoints.faucet_direct_address:
        variables["E2E_LOCAL_FAUCET_DIRECT_ADDRESS"] = endpoints.faucet_direct_address
    if endpoints.faucet_url:
        variables["E2E_LOCAL_FAUCET_URL"] = endpoints.faucet_url
    if endpoints.aggregator_url:
        variables["SPHERE_AGGREGATOR_URL"] = endpoints.aggregator_url
        variables["E2E_LOCAL_AGGREGATOR"] = "1"
    if endpoints.trust_base_path:
        check_trust_base_file(endpoints.trust_base_path, expected_network_id=endpoints.network_id)
        variables["SPHERE_TRUST_BASE_PATH"] = endpoints.trust_base_path
    if endpoints.trust_base_url:
        variables["SPHERE_TRUSTBASE_URL"] = endpoints.trust_base_url
    if endpoints.trust_base_path or endpoints.trust_base_url:
        variables["SPHERE_ORACLE_SKIP_VERIFICATION"] = "false"
        variables["SPHERE_AGGREGATOR_SKIP_VERIFICATION"] = "false"
    if endpoints.ca_bundle:
        variables["NODE_EXTRA_CA_CERTS"] = endpoints.ca_bundle
    return variables


def render_variables(variables: dict[str, str], *, output_format: str) -> str:
    """Render VARIABLES as ``dotenv`` (KEY=value), ``shell`` (export KEY='value') or ``json``.

    >>> render_variables({"A": "x y"}, output_format="shell")
    "export A='x y'\\n"
    """
    if output_format == "json":
        return json.dumps(variables, indent=2) + "\n"
    if output_format == "shell":
        return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in variables.items())
    if output_format == "dotenv":
        return "".join(f"{key}={_dotenv_value(value)}\n" for key, value in variables.items())
    raise ValueError(f"unknown format {output_format!r}; expected one of {', '.join(FORMATS)}")


def _dotenv_value(value: str) -> str:
    # dotenv readers (node's --env-file, python-dotenv) take bare values unless they
    # contain spaces, quotes, '#' or '$'; quote those in double quotes with escapes.
    if value and all(character.isalnum() or character in "-_./:@,+=" for character in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
