"""probe_nip11 against HTTPS servers on 127.0.0.1, with and without a --connect override."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.component.probes_support import (
    NIP11_DOCUMENT,
    NIP11Server,
    ThrowawayCA,
    free_port,
    https_nip11_server,
)
from unicity_infra.probes.errors import ProbeError
from unicity_infra.probes.http import fetch_nip11, probe_nip11
from unicity_infra.probes.report import Status

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture()
def server(ca: ThrowawayCA) -> Iterator[NIP11Server]:
    files = ca.issue("relay", dns_names=("relay.test",))
    with https_nip11_server(files) as running:
        yield running


class _HTMLHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>not a relay</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def html_port() -> Iterator[int]:
    html_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HTMLHandler)
    thread = threading.Thread(target=html_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield html_server.server_port
    finally:
        html_server.shutdown()
        html_server.server_close()
        thread.join(timeout=5)


def test_probe_nip11_connect_override_keeps_host_and_sni(ca: ThrowawayCA, server: NIP11Server) -> None:
    check = probe_nip11(
        "wss://relay.test", connect=("127.0.0.1", server.server_port), ca_file=ca.cert_file, timeout_s=5
    )

    assert check.status is Status.OK, check.detail
    assert "name='probe test relay'" in check.detail
    assert "version='0'" in check.detail
    assert server.seen_hosts == ["relay.test"]
    assert server.seen_sni == ["relay.test"]


def test_probe_nip11_host_keeps_url_port(ca: ThrowawayCA, server: NIP11Server) -> None:
    check = probe_nip11(
        "wss://relay.test:8443/", connect=("127.0.0.1", server.server_port), ca_file=ca.cert_file, timeout_s=5
    )

    assert check.status is Status.OK, check.detail
    assert server.seen_hosts == ["relay.test:8443"]


def test_fetch_nip11_returns_document(ca: ThrowawayCA, server: NIP11Server) -> None:
    document = fetch_nip11("wss://relay.test", connect=("127.0.0.1", server.server_port), ca_file=ca.cert_file)

    assert document == NIP11_DOCUMENT


def test_probe_nip11_untrusted_certificate_fails(server: NIP11Server) -> None:
    check = probe_nip11("wss://relay.test", connect=("127.0.0.1", server.server_port), timeout_s=5)

    assert check.status is Status.FAIL
    assert "TLS verify failed" in check.detail
    assert "unable to get local issuer certificate" in check.detail


def test_probe_nip11_name_mismatch_fails(ca: ThrowawayCA, server: NIP11Server) -> None:
    check = probe_nip11(
        "wss://faucet.test", connect=("127.0.0.1", server.server_port), ca_file=ca.cert_file, timeout_s=5
    )

    assert check.status is Status.FAIL
    assert "TLS verify failed" in check.detail
    assert "faucet.test" in check.detail


def test_probe_nip11_insecure_accepts_untrusted(server: NIP11Server) -> None:
    check = probe_nip11("wss://relay.test", connect=("127.0.0.1", server.server_port), insecure=True, timeout_s=5)

    assert check.status is Status.OK, check.detail


def test_probe_nip11_closed_port_fails() -> None:
    port = free_port()

    check = probe_nip11(f"ws://127.0.0.1:{port}", timeout_s=5)

    assert check.status is Status.FAIL
    assert f"connection refused to 127.0.0.1:{port}" in check.detail


def test_probe_nip11_html_answer_fails(html_port: int) -> None:
    check = probe_nip11(f"ws://127.0.0.1:{html_port}/", timeout_s=5)

    assert check.status is Status.FAIL
    assert "not JSON" in check.detail
    assert "text/html" in check.detail


def test_fetch_nip11_raises_probe_error(html_port: int) -> None:
    with pytest.raises(ProbeError, match="not JSON"):
        fetch_nip11(f"http://127.0.0.1:{html_port}/", timeout_s=5)
