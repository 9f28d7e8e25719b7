"""The aggregator checks over httpx.MockTransport, with the stand-in's own JSON-RPC handlers run in process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cbor2
import httpx
import pytest

from tests.fixtures import aggregator_standin
from tests.unit.test_trust_base import make_trust_base
from unicity_infra.errors import SettingsError
from unicity_infra.probes import aggregator
from unicity_infra.probes.aggregator import (
    check_block_height,
    check_certification,
    check_health,
    check_trust_base,
    parse_aggregator_url,
)
from unicity_infra.probes.certification import INCLUSION_PROOF_TAG
from unicity_infra.probes.jsonrpc import JsonRpcClient
from unicity_infra.probes.report import Check, Status

URL = "http://aggregator.test:3000/"
HEALTH_URL = URL + "health"
TRUST_BASE_URL = URL + ".well-known/trust-base.json"
TRUST_BASE_BYTES = json.dumps(make_trust_base(), indent=2).encode()
HEALTHY = {
    "status": "ok",
    "role": "standalone",
    "serverId": "s1",
    "details": {"database": "connected", "commitment_queue": "0", "commitment_queue_status": "healthy"},
}

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregator, "POLL_INTERVAL_S", 0.01)
    monkeypatch.setattr(aggregator_standin, "ROUND_DURATION_S", 0.02)


def _client(handler: Handler) -> JsonRpcClient:
    return JsonRpcClient(URL, transport=httpx.MockTransport(handler), timeout_s=2)


def _rpc_handler(results: Callable[[str, object], object]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": results(call["method"], call["params"]), "id": call["id"]})

    return handler


def _standin_handler(state: aggregator_standin.StandinState) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content)
        answer = aggregator_standin.RPC_METHODS[call["method"]](state, call["id"], call["params"])
        return httpx.Response(200, json=answer)

    return handler


def _standin_state(**changes: object) -> aggregator_standin.StandinState:
    settings: dict[str, object] = {
        "trust_base": TRUST_BASE_BYTES,
        "stuck_height": False,
        "health_status": "ok",
        "database": "connected",
        "serve_well_known": True,
    }
    settings.update(changes)
    return aggregator_standin.StandinState(**settings)  # type: ignore[arg-type]


# parse_aggregator_url


@pytest.mark.parametrize(
    ("url", "health_url", "trust_base_url", "port"),
    [
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000/health", "http://127.0.0.1:3000/.well-known/trust-base.json", 3000),
        ("https://aggregator.test/", "https://aggregator.test/health", "https://aggregator.test/.well-known/trust-base.json", 443),
        ("https://gateway.test/rpc", "https://gateway.test/rpc/health", "https://gateway.test/.well-known/trust-base.json", 443),
        ("http://aggregator.test", "http://aggregator.test/health", "http://aggregator.test/.well-known/trust-base.json", 80),
    ],
)
def test_parse_aggregator_url_endpoints(url: str, health_url: str, trust_base_url: str, port: int) -> None:
    endpoint = parse_aggregator_url(url)

    assert endpoint.health_url == health_url
    assert endpoint.trust_base_url == trust_base_url
    assert (endpoint.connect_port, endpoint.port) == (port, port)
    assert endpoint.via == ""


def test_parse_aggregator_url_connect_override() -> None:
    endpoint = parse_aggregator_url("https://aggregator.test", connect=("127.0.0.1", 8443))

    assert (endpoint.host, endpoint.port, endpoint.is_tls) == ("aggregator.test", 443, True)
    assert (endpoint.connect_host, endpoint.connect_port) == ("127.0.0.1", 8443)
    assert endpoint.via == " via 127.0.0.1:8443"


@pytest.mark.parametrize("url", ["ws://aggregator.test", "ftp://aggregator.test", "http://", "aggregator.test:3000", "http://a:99999"])
def test_parse_aggregator_url_rejects(url: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_aggregator_url(url)

    assert "aggregator URL" in str(raised.value)


# check_health


def _health_check(status: int, body: object) -> Check:
    content = body if isinstance(body, str) else json.dumps(body)
    with _client(lambda request: httpx.Response(status, text=content)) as client:
        return check_health(client, HEALTH_URL)


def test_check_health_ok() -> None:
    check = _health_check(200, HEALTHY)

    assert check.status is Status.OK
    assert check.detail == "status ok, role standalone, database connected, commitment queue 0 (healthy)"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, {**HEALTHY, "status": "degraded"}, "status is 'degraded', expected 'ok'"),
        (503, {**HEALTHY, "status": "unhealthy"}, "returned HTTP 503"),
        (200, {**HEALTHY, "details": {"database": "disconnected"}}, "database is 'disconnected', expected 'connected'"),
        (200, {"status": "ok"}, "database is None"),
        (200, "ok", "returned HTTP 200: ok"),
        (404, "404 page not found", "returned HTTP 404: 404 page not found"),
    ],
    ids=["degraded", "unhealthy", "database disconnected", "no details", "not JSON", "not found"],
)
def test_check_health_fails_with_body(status: int, body: object, message: str) -> None:
    check = _health_check(status, body)

    assert check.status is Status.FAIL
    assert message in check.detail
    assert (body if isinstance(body, str) else json.dumps(body)) in check.detail


# check_block_height


def test_check_block_height_advancing() -> None:
    heights = iter(range(5, 100))

    with _client(_rpc_handler(lambda method, params: {"blockNumber": str(next(heights))})) as client:
        check = check_block_height(client, wait_s=2)

    assert check.status is Status.OK
    assert check.detail.startswith("advanced from 5 to 6 in ")


def test_check_block_height_stuck() -> None:
    with _client(_rpc_handler(lambda method, params: {"blockNumber": "7"})) as client:
        check = check_block_height(client, wait_s=0.2)

    assert check.status is Status.FAIL
    assert check.detail.startswith("block height did not advance: stuck at 7 for 0.2 s")


def test_check_block_height_going_back() -> None:
    heights = iter([9, 3])

    with _client(_rpc_handler(lambda method, params: {"blockNumber": str(next(heights))})) as client:
        check = check_block_height(client, wait_s=2)

    assert check.status is Status.FAIL
    assert "went back from 9 to 3" in check.detail


@pytest.mark.parametrize("result", [{"blockNumber": 5}, {"blockNumber": "-5"}, {"height": "5"}, "5"])
def test_check_block_height_malformed_result(result: object) -> None:
    with _client(_rpc_handler(lambda method, params: result)) as client:
        check = check_block_height(client, wait_s=1)

    assert check.status is Status.FAIL
    assert "expected a decimal blockNumber string" in check.detail


# check_trust_base


def _trust_base_checks(status: int, body: bytes, *, trust_base_file: Path | None = None) -> list[Check]:
    with _client(lambda request: httpx.Response(status, content=body)) as client:
        return check_trust_base(client, TRUST_BASE_URL, trust_base_file=trust_base_file)


def test_check_trust_base_valid() -> None:
    [check] = _trust_base_checks(200, TRUST_BASE_BYTES)

    assert check.status is Status.OK
    assert check.detail.startswith("networkId 3, epoch 1, 3 root node(s), quorum 3, sha256 ")


def test_check_trust_base_lists_each_problem() -> None:
    document = make_trust_base()
    document["version"] = 2
    document["quorumThreshold"] = 1

    [check] = _trust_base_checks(200, json.dumps(document).encode())

    assert check.status is Status.FAIL
    assert check.detail.startswith("the served trust base has 2 problem(s): version: expected 1, got 2; quorumThreshold: 1")


def test_check_trust_base_not_json() -> None:
    [check] = _trust_base_checks(200, b"<html>proxy error</html>")

    assert check.status is Status.FAIL
    assert "invalid trust base: document: not JSON" in check.detail
    assert "<html>proxy error</html>" in check.detail


def test_check_trust_base_not_served_warns() -> None:
    [check] = _trust_base_checks(404, b"404 page not found")

    assert check.status is Status.WARN
    assert "aggregator-go serves no trust base itself" in check.detail


def test_check_trust_base_not_served_with_file(tmp_path: Path) -> None:
    trust_base_file = tmp_path / "trust-base.json"
    trust_base_file.write_bytes(TRUST_BASE_BYTES)

    [check] = _trust_base_checks(404, b"404 page not found", trust_base_file=trust_base_file)

    assert check.status is Status.FAIL
    assert "returned HTTP 404" in check.detail


def test_check_trust_base_file_equal(tmp_path: Path) -> None:
    trust_base_file = tmp_path / "trust-base.json"
    trust_base_file.write_bytes(TRUST_BASE_BYTES)

    served, compared = _trust_base_checks(200, TRUST_BASE_BYTES, trust_base_file=trust_base_file)

    assert served.status is Status.OK
    assert compared.status is Status.OK
    assert compared.name == "trust base file"


def test_check_trust_base_file_differs(tmp_path: Path) -> None:
    # The same JSON, formatted differently: byte equality is what the aggregator's file must meet.
    trust_base_file = tmp_path / "trust-base.json"
    trust_base_file.write_bytes(json.dumps(json.loads(TRUST_BASE_BYTES)).encode())
    served_hash = aggregator.trust_base_sha256(TRUST_BASE_BYTES)
    file_hash = aggregator.trust_base_sha256(trust_base_file.read_bytes())

    served, compared = _trust_base_checks(200, TRUST_BASE_BYTES, trust_base_file=trust_base_file)

    assert served.status is Status.OK
    assert compared.status is Status.FAIL
    assert f"served sha256 {served_hash}" in compared.detail
    assert f"file sha256 {file_hash}" in compared.detail


def test_check_trust_base_file_missing(tmp_path: Path) -> None:
    _, compared = _trust_base_checks(200, TRUST_BASE_BYTES, trust_base_file=tmp_path / "missing.json")

    assert compared.status is Status.FAIL
    assert "cannot read" in compared.detail


# check_certification


def test_check_certification_standin_handlers() -> None:
    state = _standin_state()

    with _client(_standin_handler(state)) as client:
        check = check_certification(client, wait_s=5)

    assert check.status is Status.OK, check.detail
    assert "-byte unicity certificate after" in check.detail
    assert len(state.submissions) == 1


def test_check_certification_stuck_times_out() -> None:
    state = _standin_state(stuck_height=True)

    with _client(_standin_handler(state)) as client:
        check = check_certification(client, wait_s=0.3)

    assert check.status is Status.FAIL
    assert "within 0.3 s; last answer: a non-inclusion proof at block 1" in check.detail


def test_check_certification_rejected_status() -> None:
    with _client(_rpc_handler(lambda method, params: {"status": "SIGNATURE_VERIFICATION_FAILED"})) as client:
        check = check_certification(client, wait_s=1)

    assert check.status is Status.FAIL
    assert '"SIGNATURE_VERIFICATION_FAILED"' in check.detail


def test_check_certification_no_unicity_certificate() -> None:
    submitted: list[str] = []

    def results(method: str, params: object) -> object:
        if method == "certification_request":
            submitted.append(params)  # type: ignore[arg-type]
            return {"status": "SUCCESS"}
        data = cbor2.loads(bytes.fromhex(submitted[0])).value[2]
        return cbor2.dumps([4, cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, data, b"\x01", b""])]).hex()

    with _client(_rpc_handler(results)) as client:
        check = check_certification(client, wait_s=1)

    assert check.status is Status.FAIL
    assert "has no unicity certificate" in check.detail


def test_check_certification_proof_for_other_data() -> None:
    def results(method: str, params: object) -> object:
        if method == "certification_request":
            return {"status": "SUCCESS"}
        other = cbor2.CBORTag(39031, [1, None, bytes(32), bytes(32), bytes(65)])
        return cbor2.dumps([4, cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, other, b"\x01", b"uc"])]).hex()

    with _client(_rpc_handler(results)) as client:
        check = check_certification(client, wait_s=1)

    assert check.status is Status.FAIL
    assert "other certification data" in check.detail
