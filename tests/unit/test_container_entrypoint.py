"""Unit tests of the entrypoint's choices: which ACME CA, and whether the reachability check runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unicity_infra.container.config import load_config
from unicity_infra.container.edge_link import EdgeLink
from unicity_infra.container.entrypoint import choose_acme_source, reachability_check
from unicity_infra.container.errors import CertificateError
from unicity_infra.container.registration import Reply

DOMAIN = "relay.example.org"


def edge_link(reply: Reply | OSError) -> EdgeLink:
    def transport(method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float) -> Reply:
        assert url == "http://haproxy:8404/v1/edge"
        assert "Authorization" not in headers
        if isinstance(reply, OSError):
            raise reply
        return reply

    return EdgeLink(api_url="http://haproxy:8404", api_key="k", container="relay", names=(DOMAIN,), http_port=80, transport=transport)


@pytest.mark.parametrize(
    ("environ", "has_edge", "expected"),
    [
        ({}, False, True),  # Let's Encrypt: check before spending its rate limit
        ({}, True, True),
        ({"ACME_SERVER": "https://pebble:14000/dir"}, False, False),
        ({"ACME_SERVER": "https://pebble:14000/dir"}, True, True),
        ({"ACME_SERVER": "https://pebble:14000/dir", "SSL_REACHABILITY_CHECK": "true"}, False, True),
        ({"SSL_REACHABILITY_CHECK": "false"}, True, False),
    ],
)
def test_reachability_check_mode(environ: dict[str, str], has_edge: bool, expected: bool) -> None:
    config = load_config({"SSL_DOMAIN": DOMAIN, **environ})

    assert (reachability_check(config, has_edge=has_edge) is not None) is expected


def test_choose_acme_source_from_edge_writes_ca_file(tmp_path: Path) -> None:
    document = {"acme_directory": "https://haproxy:14000/dir", "acme_ca_pem": "-----BEGIN CERTIFICATE-----\n"}
    config = load_config({"SSL_DOMAIN": DOMAIN, "UNICITY_RUN_DIR": str(tmp_path)})

    source = choose_acme_source(config, edge_link(Reply(200, json.dumps(document))))

    assert source.directory == "https://haproxy:14000/dir"
    assert source.origin == "edge"
    assert source.ca_bundle == tmp_path / "acme" / "edge-acme-ca.pem"
    assert source.ca_bundle.read_text() == document["acme_ca_pem"]


def test_choose_acme_source_env_wins_over_edge(tmp_path: Path) -> None:
    config = load_config({"SSL_DOMAIN": DOMAIN, "ACME_SERVER": "https://ca.example/dir", "UNICITY_RUN_DIR": str(tmp_path)})

    source = choose_acme_source(config, edge_link(Reply(200, '{"acme_directory": "https://haproxy:14000/dir"}')))

    assert source.directory == "https://ca.example/dir"
    assert not (tmp_path / "acme").exists()


@pytest.mark.parametrize("reply", [Reply(404, "{}"), Reply(200, '{"acme_directory": null}')])
def test_choose_acme_source_lets_encrypt_fallback(reply: Reply, tmp_path: Path) -> None:
    config = load_config({"SSL_DOMAIN": DOMAIN, "SSL_STAGING": "true", "UNICITY_RUN_DIR": str(tmp_path)})

    source = choose_acme_source(config, edge_link(reply))

    assert source.directory is None
    assert source.staging is True


def test_choose_acme_source_edge_not_answering_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("unicity_infra.container.entrypoint.time.sleep", lambda seconds: None)
    config = load_config({"SSL_DOMAIN": DOMAIN, "UNICITY_RUN_DIR": str(tmp_path)})

    with pytest.raises(CertificateError, match="did not say which ACME CA to use") as caught:
        choose_acme_source(config, edge_link(ConnectionRefusedError("connection refused")))

    assert caught.value.exit_code == 11
