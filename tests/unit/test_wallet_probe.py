"""probe without a service: the four endpoints a wallet takes, against servers on 127.0.0.1 started here.

One HTTP(S) server plays the aggregator's JSON-RPC, the faucet's discovery
document and the trust base; a websockets server plays the relay. Each test
sets their replies and reads what ``unicity-infra probe`` prints.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import websockets.sync.server

from tests.component.probes_support import ThrowawayCA, free_port
from tests.unit.test_trust_base import make_trust_base
from unicity_infra.cli import Context, main
from unicity_infra.commands.edge import EdgeStatus
from unicity_infra.errors import SettingsError
from unicity_infra.probes.report import Status
from unicity_infra.probes.wallet import (
    ROLES,
    check_wallet_url,
    merge_endpoints,
    probe_wallet_aggregator,
    probe_wallet_faucet,
    probe_wallet_relay,
    probe_wallet_trust_base,
)

PUBKEY = "02" + "ab" * 32
DISCOVERY = {"status": "running", "chain_pubkey": PUBKEY, "direct_address": f"DIRECT://{PUBKEY}",
             "nametag": "faucet-test", "network": "testnet", "nostr_relays": ["ws://relay"]}
TRUST_BASE = json.dumps(make_trust_base()).encode()


@dataclass
class Behaviour:
    """The replies of the HTTP server; tests change them before probing."""

    rpc: dict[str, object] = field(default_factory=lambda: {"result": {"blockNumber": "42"}})
    rpc_status: int = 200
    rpc_raw: bytes | None = None
    discovery: dict[str, object] | None = field(default_factory=lambda: dict(DISCOVERY))
    trust_base: bytes | None = TRUST_BASE
    hosts: list[str] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        behaviour = self.server.behaviour
        behaviour.hosts.append(self.headers.get("Host", ""))
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if behaviour.rpc_raw is not None:
            self._send(behaviour.rpc_status, behaviour.rpc_raw, "text/html")
            return
        if request.get("method") != "get_block_height":
            self._send(200, json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                        "error": {"code": -32601, "message": "Method not found"}}).encode())
            return
        self._send(behaviour.rpc_status, json.dumps({"jsonrpc": "2.0", "id": request["id"], **behaviour.rpc}).encode())

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        behaviour.hosts.append(self.headers.get("Host", ""))
        if self.path == "/.well-known/faucet.json" and behaviour.discovery is not None:
            self._send(200, json.dumps(behaviour.discovery).encode(), cors=True)
        elif self.path == "/.well-known/trust-base.json" and behaviour.trust_base is not None:
            self._send(200, behaviour.trust_base)
        else:
            self._send(404, b'{"error": "not found"}')

    def _send(self, status: int, body: bytes, content_type: str = "application/json", *, cors: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if cors:
            self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # Clients that reject the certificate abort the handshake, which is what some tests check.


@contextlib.contextmanager
def http_server(context: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """Serve the aggregator, discovery and trust-base paths on 127.0.0.1, over TLS with CONTEXT."""
    server = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=False)
    server.behaviour = Behaviour()
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.server_bind()
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def relay_server(mode: str = "eose", context: ssl.SSLContext | None = None) -> Iterator[int]:
    """Run a relay that replies to each REQ with EOSE, with CLOSED ("closed") or not at all ("silent"); yield its port."""

    def handle(connection: websockets.sync.server.ServerConnection) -> None:
        for text in connection:
            message = json.loads(text)
            if message[0] != "REQ":
                continue
            if mode == "eose":
                connection.send(json.dumps(["EOSE", message[1]]))
            elif mode == "closed":
                connection.send(json.dumps(["CLOSED", message[1], "restricted: auth required"]))

    with websockets.sync.server.serve(handle, "127.0.0.1", 0, ssl=context) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(timeout=5)


@pytest.fixture
def tls(tmp_path: Path) -> SimpleNamespace:
    """A throwaway CA and a server context for 127.0.0.1 and *.unicity.localhost."""
    ca = ThrowawayCA(tmp_path)
    files = ca.issue("server", dns_names=("*.unicity.localhost",), ip_addresses=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    return SimpleNamespace(ca_file=ca.cert_file, context=context)


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty XDG_STATE_HOME, so no stack is recorded unless a test writes one."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def run_cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(arguments))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def flags(server: _Server, relay_port: int, scheme: str = "http") -> list[str]:
    base = f"{scheme}://127.0.0.1:{server.server_port}"
    ws = "wss" if scheme == "https" else "ws"
    return ["--aggregator-url", base, "--relay-url", f"{ws}://127.0.0.1:{relay_port}", "--faucet-url", base,
            "--trust-base-url", f"{base}/.well-known/trust-base.json"]


def checks_of(document: dict, role: str) -> dict[str, dict]:
    target = next(target for target in document["targets"] if target["target"].startswith(f"{role}: "))
    return {check["name"]: check for check in target["checks"]}


# green ------------------------------------------------------------------------------------


def test_probe_all_four_green_plain(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with http_server() as server, relay_server() as relay_port:
        code, out, _ = run_cli(capsys, "probe", *flags(server, relay_port))

    assert code == 0
    for role in ROLES:
        assert f"\n{role}: " in f"\n{out}"
    assert "✓ get_block_height: block height 42" in out
    assert "✓ subscription: REQ wallet-probe-" in out
    assert "✓ discovery: running, chain_pubkey " + PUBKEY in out
    assert "✓ trust base: networkId 3, epoch 1, 3 root node(s)" in out
    assert out.rstrip().endswith("RESULT: all checks passed")


def test_probe_all_four_green_tls_with_ca_file(state_home: Path, tls: SimpleNamespace,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with http_server(tls.context) as server, relay_server(context=tls.context) as relay_port:
        code, out, _ = run_cli(capsys, "probe", *flags(server, relay_port, "https"), "--ca-file", str(tls.ca_file),
                               "--json")

    document = json.loads(out)
    assert code == 0
    assert document["ok"] is True
    assert len(document["targets"]) == 4
    for role in ROLES:
        checks = checks_of(document, role)
        assert checks["certificate chain"]["status"] == "ok", checks
        assert checks["certificate name"]["status"] == "ok"


# TLS ----------------------------------------------------------------------------------------


def test_probe_tls_untrusted_fails_each(state_home: Path, tls: SimpleNamespace,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with http_server(tls.context) as server, relay_server(context=tls.context) as relay_port:
        code, out, err = run_cli(capsys, "probe", *flags(server, relay_port, "https"), "--json")

    document = json.loads(out)
    assert code == 1
    assert document["failed"] == 4
    for role in ROLES:
        checks = checks_of(document, role)
        assert checks["certificate chain"]["status"] == "fail"
        assert "the system trust store" in checks["certificate chain"]["detail"]
        # Nothing after a rejected TLS connection is tried.
        assert not {"get_block_height", "websocket open", "discovery", "trust base"} & checks.keys()
    assert "checks failed for aggregator: https://127.0.0.1:" in err


def test_probe_tls_wrong_name_fails(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    files = ca.issue("other", dns_names=("other.example.org",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    with http_server(context) as server:
        report = probe_wallet_aggregator(f"https://127.0.0.1:{server.server_port}", ca_file=ca.cert_file,
                                         timeout_s=5)

    checks = {check.name: check for check in report.checks}
    assert checks["certificate name"].status is Status.FAIL
    assert "SAN does not contain 127.0.0.1" in checks["certificate name"].detail
    assert "get_block_height" not in checks


# aggregator -----------------------------------------------------------------------------------


def _aggregator_check(server: _Server) -> tuple[Status, str]:
    report = probe_wallet_aggregator(f"http://127.0.0.1:{server.server_port}", timeout_s=5)
    check = report.checks[-1]
    assert check.name in ("get_block_height", "TCP connect")
    return check.status, check.detail


def test_aggregator_json_rpc_error_named() -> None:
    with http_server() as server:
        server.behaviour.rpc = {"error": {"code": -32601, "message": "Method not found"}}
        status, detail = _aggregator_check(server)

    assert status is Status.FAIL
    assert "JSON-RPC error -32601 from get_block_height" in detail
    assert "Method not found" in detail


def test_aggregator_block_number_not_decimal() -> None:
    with http_server() as server:
        server.behaviour.rpc = {"result": {"blockNumber": 42}}
        status, detail = _aggregator_check(server)

    assert status is Status.FAIL
    assert "expected a decimal blockNumber string" in detail


def test_aggregator_not_json_rpc() -> None:
    with http_server() as server:
        server.behaviour.rpc_status, server.behaviour.rpc_raw = 404, b"<html>not here</html>"
        status, detail = _aggregator_check(server)

    assert status is Status.FAIL
    assert "HTTP 404 with a body that is not JSON" in detail


def test_aggregator_refused() -> None:
    report = probe_wallet_aggregator(f"http://127.0.0.1:{free_port()}", timeout_s=2)

    assert [check.name for check in report.checks] == ["TCP connect"]
    assert report.checks[0].status is Status.FAIL
    assert "connection refused" in report.checks[0].detail


# relay ------------------------------------------------------------------------------------------


def test_relay_closed_subscription_named() -> None:
    with relay_server("closed") as port:
        report = probe_wallet_relay(f"ws://127.0.0.1:{port}", timeout_s=5)

    check = report.checks[-1]
    assert (check.name, check.status) == ("subscription", Status.FAIL)
    assert "closed subscription" in check.detail
    assert "auth required" in check.detail


def test_relay_without_eose_times_out() -> None:
    with relay_server("silent") as port:
        report = probe_wallet_relay(f"ws://127.0.0.1:{port}", timeout_s=1)

    check = report.checks[-1]
    assert (check.name, check.status) == ("subscription", Status.FAIL)
    assert "timed out after 1 s waiting for EOSE" in check.detail


def test_relay_url_not_a_websocket() -> None:
    with http_server() as server:
        report = probe_wallet_relay(f"ws://127.0.0.1:{server.server_port}", timeout_s=5)

    check = report.checks[-1]
    assert (check.name, check.status) == ("websocket open", Status.FAIL)
    assert "websocket" in check.detail


# faucet -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discovery", "reason"),
    [
        (None, "returned HTTP 404; is this a faucet's URL?"),
        ({**DISCOVERY, "status": "starting"}, "status is 'starting'"),
        ({**DISCOVERY, "chain_pubkey": None}, "chain_pubkey None is not a 66-hex compressed secp256k1 key"),
    ],
)
def test_faucet_discovery_failures(discovery: dict | None, reason: str) -> None:
    with http_server() as server:
        server.behaviour.discovery = discovery
        report = probe_wallet_faucet(f"http://127.0.0.1:{server.server_port}", timeout_s=5)

    check = report.checks[-1]
    assert (check.name, check.status) == ("discovery", Status.FAIL)
    assert reason in check.detail
    assert report.target.startswith("faucet: http://127.0.0.1:")


# trust base -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "returned HTTP 404"),
        (b"<html></html>", "does not load: invalid trust base: document: not JSON"),
        (json.dumps({**make_trust_base(), "quorumThreshold": 1}).encode(), "quorumThreshold: 1 is outside 3..3"),
    ],
)
def test_trust_base_failures(content: bytes | None, reason: str) -> None:
    with http_server() as server:
        server.behaviour.trust_base = content
        report = probe_wallet_trust_base(f"http://127.0.0.1:{server.server_port}/.well-known/trust-base.json",
                                         timeout_s=5)

    check = report.checks[-1]
    assert (check.name, check.status) == ("trust base", Status.FAIL)
    assert reason in check.detail


def test_trust_base_other_network_fails() -> None:
    with http_server() as server:
        report = probe_wallet_trust_base(f"http://127.0.0.1:{server.server_port}/.well-known/trust-base.json",
                                         expected_network_id=4, timeout_s=5)

    checks = {check.name: check for check in report.checks}
    assert checks["trust base"].status is Status.OK
    assert checks["network id"].status is Status.FAIL
    assert "networkId 3, but the running genesis is network 4" in checks["network id"].detail


# URLs and their sources -------------------------------------------------------------------------------


def test_no_stack_and_no_flags_is_usage_error(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "probe")

    assert code == 2
    assert out == ""
    assert "no endpoints recorded for stack 'default' and no URL given" in err
    assert "run 'unicity-infra up' first, or give --aggregator-url" in err


def test_no_stack_names_stack_in_hint(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--stack", "ci", "probe")

    assert code == 2
    assert "'unicity-infra --stack ci up'" in err


def test_missing_urls_warned_not_failed(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with relay_server() as relay_port:
        code, out, _ = run_cli(capsys, "probe", "--relay-url", f"ws://127.0.0.1:{relay_port}", "--json")

    document = json.loads(out)
    assert code == 0
    assert document["warnings"] == 3
    assert "--faucet-url was not given" in checks_of(document, "faucet")["URL"]["detail"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--relay-url", "https://relay.example.org"], "invalid value for --relay-url"),
        (["--aggregator-url", "ws://aggregator.example.org"], "invalid value for --aggregator-url"),
        (["--trust-base-url", "file:///tmp/trust-base.json"], "invalid value for --trust-base-url"),
        (["--faucet-url", "http://faucet.example.org:99999"], "the port is invalid"),
        (["--ca-file", "/nonexistent/ca.pem", "--relay-url", "ws://127.0.0.1:1"], "invalid value for --ca-file"),
        (["--connect", "nowhere", "--relay-url", "ws://127.0.0.1:1"], "invalid value for --connect"),
        (["--timeout", "5", "relay", "ws://127.0.0.1:1"], "invalid use of --timeout"),
    ],
)
def test_bad_flags_exit_2(state_home: Path, capsys: pytest.CaptureFixture[str], arguments: list[str],
                          message: str) -> None:
    code, out, err = run_cli(capsys, "probe", *arguments)

    assert code == 2
    assert out == ""
    assert message in err


def test_check_wallet_url_accepts_each_scheme() -> None:
    assert check_wallet_url("relay", "wss://relay.example.org") == "wss://relay.example.org"
    with pytest.raises(SettingsError, match="--faucet-url"):
        check_wallet_url("faucet", "faucet.example.org")


def test_merge_flags_override_one_by_one() -> None:
    recorded = {"aggregator": "https://aggregator.unicity.localhost", "relay": "wss://relay.unicity.localhost",
                "faucet": "https://faucet.unicity.localhost",
                "trust base": "https://aggregator.unicity.localhost/.well-known/trust-base.json"}

    merged = merge_endpoints(recorded=recorded, overrides={"relay": "wss://relay.example.org"}, recorded_from="x",
                             edge_connect=("127.0.0.1", 8443), recorded_network_id=3)

    assert merged.urls == {**recorded, "relay": "wss://relay.example.org"}
    # The edge carries only the stack's own names; another relay is reached directly.
    assert merged.connect == {role: ("127.0.0.1", 8443) for role in ("aggregator", "faucet", "trust base")}
    assert merged.expected_network_id == 3


def test_merge_overridden_trust_base_has_no_expected_network() -> None:
    merged = merge_endpoints(recorded={"trust base": "http://127.0.0.1:3000/.well-known/trust-base.json"},
                             overrides={"trust base": "https://example.org/trust-base.json"}, recorded_from="x",
                             recorded_network_id=3, connect=("127.0.0.1", 1))

    assert merged.expected_network_id is None
    assert merged.connect == {"trust base": ("127.0.0.1", 1)}
    assert set(merged.missing) == {"aggregator", "relay", "faucet"}


# the stack 'up' recorded ----------------------------------------------------------------------------------


class FakeEngine:
    """The two engine calls probe makes: the stack's containers and (through edge_status) nothing else."""

    def __init__(self, running: list[str]) -> None:
        self.running = running

    def list_containers(self, *, stack: str | None = None, service: str | None = None) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=name, state="running") for name in self.running]


def record_stack(state_home: Path, stack: str, endpoints: dict[str, object], containers: list[str]) -> None:
    path = state_home / "unicity-infra" / "stacks" / stack / "endpoints.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"endpoints": endpoints, "containers": containers}))


def test_recorded_direct_stack_probed_and_flag_replaces_one(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Context, "engine", lambda self: FakeEngine(["unicity-t-relay"]))
    with http_server() as server, relay_server() as relay_port, relay_server() as other_relay:
        base = f"http://127.0.0.1:{server.server_port}"
        record_stack(state_home, "t", {
            "mode": "direct", "relay_url": f"ws://127.0.0.1:{relay_port}", "aggregator_url": base,
            "faucet_url": base, "trust_base_url": f"{base}/.well-known/trust-base.json", "network_id": 3,
        }, ["unicity-t-relay"])

        code, out, err = run_cli(capsys, "--stack", "t", "probe", "--relay-url", f"ws://127.0.0.1:{other_relay}")

    assert code == 0, out + err
    assert f"relay: ws://127.0.0.1:{other_relay}" in out
    assert "✓ network id: networkId 3 is the running genesis's network" in out
    assert "probing the endpoints 'up' recorded for stack 't' (direct mode)" in err


def test_recorded_stack_stopped_fails(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Context, "engine", lambda self: FakeEngine([]))
    record_stack(state_home, "t", {"mode": "direct", "relay_url": "ws://127.0.0.1:1"}, ["unicity-t-relay"])

    code, _, err = run_cli(capsys, "--stack", "t", "probe")

    assert code == 1
    assert "containers recorded by 'up' are not running: unicity-t-relay" in err
    assert "run 'unicity-infra --stack t up relay --relay-port 1' again" in err


def test_recorded_whole_stack_hint_keeps_ports(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Context, "engine", lambda self: FakeEngine([]))
    record_stack(state_home, "default", {
        "mode": "direct", "relay_url": "ws://127.0.0.1:7777", "aggregator_url": "http://127.0.0.1:23000",
        "faucet_url": "http://127.0.0.1:7780",
    }, ["unicity-relay"])

    code, _, err = run_cli(capsys, "probe")

    assert code == 1
    assert "run 'unicity-infra up --aggregator-port 23000' again" in err


def test_recorded_local_edge_through_edge(state_home: Path, tls: SimpleNamespace,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Context, "engine", lambda self: FakeEngine(["unicity-e-faucet"]))
    with http_server(tls.context) as server:
        edge = EdgeStatus(container="unicity-e-edge", state="running", health="healthy", api_url=None, http_url=None,
                          https_url=f"https://127.0.0.1:{server.server_port}", acme_directory=None,
                          ca_bundle=str(tls.ca_file), acme_ca_bundle=None, key_required=False, key_file=None)
        monkeypatch.setattr("unicity_infra.commands.edge.edge_status", lambda engine, *, stack: edge)
        record_stack(state_home, "e", {
            "mode": "local-edge", "aggregator_url": "https://aggregator.unicity.localhost",
            "faucet_url": "https://faucet.unicity.localhost",
            "trust_base_url": "https://aggregator.unicity.localhost/.well-known/trust-base.json",
            "network_id": 3, "ca_bundle": "/nonexistent/old-bundle.pem",
        }, ["unicity-e-faucet"])

        code, out, err = run_cli(capsys, "--stack", "e", "probe", "--json")

    document = json.loads(out)
    assert code == 0, out + err
    assert checks_of(document, "aggregator")["certificate chain"]["status"] == "ok"
    assert checks_of(document, "relay")["URL"]["status"] == "warn"
    targets = [target["target"] for target in document["targets"]]
    assert f"faucet: https://faucet.unicity.localhost/.well-known/faucet.json via 127.0.0.1:{server.server_port}" \
        in targets
    # Host headers carry the stack's names, as through HAProxy.
    assert {"aggregator.unicity.localhost", "faucet.unicity.localhost"} <= set(server.behaviour.hosts)
    assert err == ""


def test_recorded_local_edge_down_fails(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Context, "engine", lambda self: FakeEngine(["unicity-e-relay"]))
    monkeypatch.setattr("unicity_infra.commands.edge.edge_status", lambda engine, *, stack: None)
    record_stack(state_home, "e", {"mode": "local-edge", "relay_url": "wss://relay.unicity.localhost"},
                 ["unicity-e-relay"])

    code, _, err = run_cli(capsys, "--stack", "e", "probe")

    assert code == 1
    assert "the local edge of stack 'e' is missing" in err
    assert "'unicity-infra --stack e up --mode local-edge'" in err
