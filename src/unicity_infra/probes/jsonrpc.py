"""A JSON-RPC 2.0 client over httpx, and the ``--connect`` override as an httpx transport.

Errors the server returns become :class:`JsonRpcError`; transport failures become
the :class:`ProbeError` subclasses of ``probes/errors.py``, naming the URL.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from unicity_infra.probes.errors import ProbeError, ProtocolError, format_address, mapping_errors
from unicity_infra.probes.tls import create_ssl_context

__all__ = ["JsonRpcError", "ConnectToTransport", "JsonRpcClient", "call"]

logger = logging.getLogger(__name__)

# Maximum number of response body characters quoted in a message.
_BODY_EXCERPT_CHARS = 300


class JsonRpcError(ProbeError):
    """The server returned an error object for a JSON-RPC call."""

    def __init__(self, code: int, message: str, data: object = None, *, url: str = "", method: str = "") -> None:
        self.code = code
        self.message = message
        self.data = data
        self.url = url
        self.method = method
        text = f"JSON-RPC error {code} from {method or 'the call'}"
        if url:
            text += f" at {url}"
        text += f": {message}"
        if data is not None:
            text += f" (data: {_excerpt(json.dumps(data))})"
        super().__init__(text)


class ConnectToTransport(httpx.BaseTransport):
    """Send every request to CONNECT_HOST:CONNECT_PORT, like ``curl --connect-to``.

    The Host header, TLS SNI and the certificate name check keep the request
    URL's host, so a deployment can be probed before its DNS points at it.
    """

    def __init__(self, connect_host: str, connect_port: int, *, verify: Any) -> None:
        self.connect_host = connect_host
        self.connect_port = connect_port
        self._inner = httpx.HTTPTransport(verify=verify)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # httpx set the Host header from the original URL when it built the request;
        # httpcore sends sni_hostname as SNI and checks the certificate against it.
        server_name = request.url.host
        request.url = request.url.copy_with(host=self.connect_host, port=self.connect_port)
        request.extensions = {**request.extensions, "sni_hostname": server_name}
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class JsonRpcClient:
    """A connection pool to one JSON-RPC endpoint, which also fetches plain GET resources from the same server.

    TRANSPORT replaces the network (tests pass ``httpx.MockTransport``) and
    cannot be combined with CONNECT. Raises :class:`CAFileError` when CA_FILE
    cannot be loaded.
    """

    def __init__(
        self,
        url: str,
        *,
        connect: tuple[str, int] | None = None,
        ca_file: Path | None = None,
        insecure: bool = False,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if transport is not None and connect is not None:
            raise ValueError("pass either transport or connect, not both")
        self.url = url
        self.timeout_s = timeout_s
        self.address = url if connect is None else f"{url} via {format_address(*connect)}"
        self._ids = itertools.count(1)

        if transport is None:
            context = create_ssl_context(ca_file=ca_file, insecure=insecure)
            if connect is None:
                transport = httpx.HTTPTransport(verify=context)
            else:
                transport = ConnectToTransport(connect[0], connect[1], verify=context)
        # trust_env=False: a proxy from the environment would change what is probed.
        self._client = httpx.Client(transport=transport, timeout=timeout_s, trust_env=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: object) -> object:
        """Call METHOD with PARAMS and return the ``result`` member of the response.

        Raises :class:`JsonRpcError` for an error object, :class:`ProtocolError`
        for a response that is not JSON-RPC 2.0, and another :class:`ProbeError`
        when the connection fails or times out.
        """
        request_id = next(self._ids)
        payload = {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
        with mapping_errors(step=f"the answer to {method}", address=self.address, timeout_s=self.timeout_s):
            response = self._client.post(self.url, json=payload)
        logger.debug("JSON-RPC %s %s status=%s", method, self.address, response.status_code)

        return self._parse_response(response, method=method, request_id=request_id)

    def get(self, url: str) -> httpx.Response:
        """GET URL, which must be on the same server, and return the response whatever its status.

        Raises :class:`ProbeError` when the connection fails or times out.
        """
        with mapping_errors(step=f"the answer to GET {url}", address=self.address, timeout_s=self.timeout_s):
            response = self._client.get(url)
        logger.debug("GET %s status=%s", url, response.status_code)
        return response

    def _parse_response(self, response: httpx.Response, *, method: str, request_id: int) -> object:
        try:
            document = json.loads(response.content)
        except ValueError:
            raise ProtocolError(
                self.address,
                f"{method} returned HTTP {response.status_code} with a body that is not JSON: "
                f"{_excerpt(response.text)!r}; is this the aggregator's JSON-RPC URL?",
            ) from None
        if not isinstance(document, dict):
            raise ProtocolError(self.address, f"{method} returned JSON that is not an object: {_excerpt(response.text)}")

        error = document.get("error")
        if error is not None:
            raise self._error_from(error, method=method)
        if "result" not in document:
            raise ProtocolError(
                self.address,
                f"{method} returned HTTP {response.status_code} with neither 'result' nor 'error': "
                f"{_excerpt(response.text)}",
            )
        if document.get("id") != request_id:
            raise ProtocolError(
                self.address, f"{method} returned id {document.get('id')!r} for the request with id {request_id}"
            )
        return document["result"]

    def _error_from(self, error: object, *, method: str) -> ProbeError:
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return ProtocolError(self.address, f"{method} returned a malformed error member: {_excerpt(json.dumps(error))}")
        message = str(error.get("message", ""))
        return JsonRpcError(error["code"], message, error.get("data"), url=self.address, method=method)


def call(
    url: str,
    method: str,
    params: object,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> object:
    """Call METHOD with PARAMS at URL once and return its result. Raises as :meth:`JsonRpcClient.call` does."""
    with JsonRpcClient(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s) as client:
        return client.call(method, params)


def _excerpt(text: str) -> str:
    if len(text) <= _BODY_EXCERPT_CHARS:
        return text
    return text[:_BODY_EXCERPT_CHARS] + f"… ({len(text)} characters)"
