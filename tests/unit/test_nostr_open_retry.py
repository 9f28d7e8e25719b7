"""open_relay tries a stalled websocket handshake once more on a new connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from websockets.sync.server import serve

from unicity_infra.probes.errors import ProbeTimeoutError
from unicity_infra.probes.nostr import open_relay


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        target.close()


class StallingFront:
    """Loopback listener that keeps the first STALLS connections silent and forwards the rest to BACKEND_PORT."""

    def __init__(self, backend_port: int, stalls: int) -> None:
        self.backend_port = backend_port
        self.stalls = stalls
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.stalls:
                self.held.append(client)
                continue
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
            threading.Thread(target=_pipe, args=(client, backend), daemon=True).start()
            threading.Thread(target=_pipe, args=(backend, client), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for client in self.held:
            client.close()


@pytest.fixture
def backend_port() -> Iterator[int]:
    def echo(connection) -> None:  # noqa: ANN001
        for message in connection:
            connection.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server.socket.getsockname()[1]
        server.shutdown()


def test_one_stalled_handshake_is_retried(backend_port: int) -> None:
    front = StallingFront(backend_port, stalls=1)
    try:
        connection = open_relay(f"ws://127.0.0.1:{front.port}", timeout_s=1.0)
        connection.close()
    finally:
        front.close()

    assert front.accepted == 2


def test_two_stalled_handshakes_time_out(backend_port: int) -> None:
    front = StallingFront(backend_port, stalls=2)
    try:
        with pytest.raises(ProbeTimeoutError) as error_info:
            open_relay(f"ws://127.0.0.1:{front.port}", timeout_s=0.5)
    finally:
        front.close()

    assert error_info.value.step == "the websocket handshake"
    assert front.accepted == 2
