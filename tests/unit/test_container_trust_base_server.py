"""Unit tests of the trust-base responses (container/trust_base_server.py); no server is started."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from unicity_infra.container.trust_base_server import build_trust_base_response, is_etag_match, trust_base_etag

TRUST_BASE = b'{"version": 1, "networkId": 3}\n'


@pytest.fixture()
def trust_base_file(tmp_path: Path) -> Path:
    path = tmp_path / "trust-base.json"
    path.write_bytes(TRUST_BASE)
    return path


def test_trust_base_etag_is_quoted_sha256() -> None:
    assert trust_base_etag(TRUST_BASE) == '"' + hashlib.sha256(TRUST_BASE).hexdigest() + '"'


def test_build_trust_base_response_serves_file(trust_base_file: Path) -> None:
    response = build_trust_base_response(trust_base_file)

    assert response.status == 200
    assert response.body == TRUST_BASE
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"] == trust_base_etag(TRUST_BASE)


def test_build_trust_base_response_not_modified(trust_base_file: Path) -> None:
    response = build_trust_base_response(trust_base_file, if_none_match=trust_base_etag(TRUST_BASE))

    assert response.status == 304
    assert response.body == b""
    assert response.headers["ETag"] == trust_base_etag(TRUST_BASE)


def test_build_trust_base_response_new_content_new_etag(trust_base_file: Path) -> None:
    old_etag = trust_base_etag(TRUST_BASE)
    trust_base_file.write_bytes(b'{"version": 1, "networkId": 4}\n')

    response = build_trust_base_response(trust_base_file, if_none_match=old_etag)

    assert response.status == 200
    assert response.headers["ETag"] != old_etag


def test_build_trust_base_response_missing_file_404_json(tmp_path: Path) -> None:
    response = build_trust_base_response(tmp_path / "trust-base.json")

    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "does not exist" in json.loads(response.body)["error"]


def test_build_trust_base_response_partial_file_503(trust_base_file: Path) -> None:
    trust_base_file.write_bytes(b'{"version": 1,')

    response = build_trust_base_response(trust_base_file)

    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert "not valid JSON" in json.loads(response.body)["error"]


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"other", "abc"', True),
        ("*", True),
        ('"other"', False),
        ("", False),
        (None, False),
    ],
)
def test_is_etag_match(header: str | None, matches: bool) -> None:
    assert is_etag_match(header, '"abc"') is matches
