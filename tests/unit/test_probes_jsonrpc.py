"""The JSON-RPC client over httpx.MockTransport: results, error objects, malformed responses, transport failures."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from unicity_infra.probes.errors import (
    ConnectFailedError,
    ProbeTimeoutError,
    ProtocolError,
)
from unicity_infra.probes.jsonrpc import ConnectToTransport, JsonRpcClient, JsonRpcError

URL = "http://aggregator.test:3000/"


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> JsonRpcClient:
    return JsonRpcClient(URL, transport=httpx.MockTransport(handler), timeout_s=2)


def _answer(body: object, *, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


def test_call_returns_result() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": {"blockNumber": "42"}, "id": 1})

    with _client(handler) as client:
        result = client.call("get_block_height", {})

    assert result == {"blockNumber": "42"}
    assert seen == [{"jsonrpc": "2.0", "method": "get_block_height", "params": {}, "id": 1}]


def test_call_numbers_requests() -> None:
    ids: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request_id = json.loads(request.content)["id"]
        ids.append(request_id)
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": None, "id": request_id})

    with _client(handler) as client:
        client.call("a", {})
        client.call("b", {})

    assert ids == [1, 2]


def test_call_maps_error_object() -> None:
    error = {"code": -32602, "message": "Invalid params", "data": "stateId must be 32 bytes"}

    with _client(_answer({"jsonrpc": "2.0", "error": error, "id": 1})) as client, pytest.raises(JsonRpcError) as raised:
        client.call("get_inclusion_proof.v2", {"stateId": "00"})

    assert raised.value.code == -32602
    assert raised.value.message == "Invalid params"
    assert raised.value.data == "stateId must be 32 bytes"
    assert str(raised.value) == (
        f'JSON-RPC error -32602 from get_inclusion_proof.v2 at {URL}: Invalid params (data: "stateId must be 32 bytes")'
    )


def test_call_error_object_with_http_503() -> None:
    body = {"jsonrpc": "2.0", "error": {"code": -32006, "message": "concurrency limit"}, "id": 1}

    with _client(_answer(body, status=503)) as client, pytest.raises(JsonRpcError) as raised:
        client.call("certification_request", "d99876")

    assert raised.value.code == -32006
    assert raised.value.data is None


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "returned HTTP 502 with a body that is not JSON"),
        (httpx.Response(200, text=""), "with a body that is not JSON"),
        (httpx.Response(200, json=[1, 2]), "JSON that is not an object"),
        (httpx.Response(200, json={"jsonrpc": "2.0", "id": 1}), "neither 'result' nor 'error'"),
        (httpx.Response(200, json={"jsonrpc": "2.0", "result": 1, "id": 99}), "returned id 99"),
        (httpx.Response(200, json={"jsonrpc": "2.0", "error": "boom", "id": 1}), "malformed error member"),
        (httpx.Response(200, json={"jsonrpc": "2.0", "error": {"message": "x"}, "id": 1}), "malformed error member"),
    ],
    ids=["html", "empty", "array", "no result", "wrong id", "string error", "error without code"],
)
def test_call_rejects_malformed_response(response: httpx.Response, message: str) -> None:
    with _client(lambda request: response) as client, pytest.raises(ProtocolError) as raised:
        client.call("get_block_height", {})

    assert message in str(raised.value)
    assert raised.value.address == URL


def test_call_connection_refused_names_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise httpx.ConnectError("refused", request=request) from exc

    with _client(handler) as client, pytest.raises(ConnectFailedError) as raised:
        client.call("get_block_height", {})

    assert str(raised.value).startswith(f"connection refused to {URL}")


def test_call_timeout_names_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with _client(handler) as client, pytest.raises(ProbeTimeoutError) as raised:
        client.call("get_block_height", {})

    assert str(raised.value) == f"timed out after 2 s waiting for the answer to get_block_height from {URL}"


def test_get_returns_any_status() -> None:
    with _client(lambda request: httpx.Response(404, text="404 page not found")) as client:
        response = client.get(URL + "health")

    assert response.status_code == 404


def test_client_rejects_transport_with_connect() -> None:
    with pytest.raises(ValueError, match="either transport or connect"):
        JsonRpcClient(URL, connect=("127.0.0.1", 3000), transport=httpx.MockTransport(lambda request: httpx.Response(200)))


def test_client_address_names_connect_override() -> None:
    with JsonRpcClient("https://aggregator.test/", connect=("127.0.0.1", 8443)) as client:
        assert client.address == "https://aggregator.test/ via 127.0.0.1:8443"


def test_connect_to_transport_rewrites_connection() -> None:
    seen: list[httpx.Request] = []
    transport = ConnectToTransport("127.0.0.1", 8443, verify=True)
    transport._inner = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200))  # type: ignore[assignment]

    with httpx.Client(transport=transport) as client:
        client.get("https://aggregator.test/health")

    assert str(seen[0].url) == "https://127.0.0.1:8443/health"
    assert seen[0].headers["Host"] == "aggregator.test"
    assert seen[0].extensions["sni_hostname"] == "aggregator.test"
