"""Servers and certificates for the probe component tests, all on 127.0.0.1.

A throwaway CA made with ``cryptography``, an HTTPS server in a thread that serves
a NIP-11 document, the real nostr-rs-relay and a real nginx terminating TLS in
front of it. Each starter is a context manager that stops what it started.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


NIP11_DOCUMENT = {
    "name": "probe test relay",
    "software": "unicity-infra tests",
    "version": "0",
    "supported_nips": [1, 11],
}


@dataclass(frozen=True)
class CertificateFiles:
    """A PEM certificate and its private key on disk."""

    cert_file: Path
    key_file: Path


class ThrowawayCA:
    """A self-signed CA that issues leaf certificates for one test run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unicity-infra probe test CA")])
        public_key = self._key.public_key()
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = directory / "ca.pem"
        self.cert_file.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        *,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        valid_from: datetime.timedelta = datetime.timedelta(days=-1),
        valid_for: datetime.timedelta = datetime.timedelta(days=90),
    ) -> CertificateFiles:
        """Issue a server certificate valid from now+VALID_FROM for VALID_FOR, written as STEM.pem and STEM.key."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_before = datetime.datetime.now(datetime.UTC) + valid_from
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return _write_pair(self.directory, stem, certificate, key)


def issue_self_signed(directory: Path, stem: str, *, dns_names: tuple[str, ...]) -> CertificateFiles:
    """Write a self-signed server certificate for DNS_NAMES, valid for 30 days."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write_pair(directory, stem, certificate, key)


def _write_pair(directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertificateFiles:
    files = CertificateFiles(cert_file=directory / f"{stem}.pem", key_file=directory / f"{stem}.key")
    files.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until 127.0.0.1:PORT accepts connections; fail early when PROCESS exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with status {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


class _NIP11Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1, as relays speak it: websocket clients reject an HTTP/1.0 status line.
    protocol_version = "HTTP/1.1"
    server: NIP11Server

    def do_GET(self) -> None:
        self.server.seen_hosts.append(self.headers.get("Host", ""))
        body = json.dumps(NIP11_DOCUMENT).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/nostr+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class NIP11Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # What clients sent, in arrival order: Host headers and TLS server names.
    seen_hosts: list[str]
    seen_sni: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that reject the certificate abort the handshake; that is the test.
        pass


@contextlib.contextmanager
def https_nip11_server(files: CertificateFiles) -> Iterator[NIP11Server]:
    """Serve NIP11_DOCUMENT over HTTPS on 127.0.0.1 with FILES; the port is ``server.server_port``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    server = NIP11Server(("127.0.0.1", 0), _NIP11Handler, bind_and_activate=False)
    server.seen_hosts = []
    server.seen_sni = []

    def record_sni(connection: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        server.seen_sni.append(server_name or "")

    context.sni_callback = record_sni
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.server_bind()
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="https-nip11", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def find_relay_binary() -> Path:
    """Return the nostr-rs-relay binary: $NOSTR_RS_RELAY_BIN, else the one the offline relay image carries.

    That one is cached under the build cache and built with cargo on first use,
    under the lock the Docker tier's image builds take, so concurrent workers
    build it once. A failed build fails the test: the component tier must not
    pass by skipping the real relay.
    """
    configured = os.environ.get("NOSTR_RS_RELAY_BIN")
    if configured:
        return Path(configured)
    from tests.fixtures.build_lock import image_build_lock
    from unicity_infra.engine.images import relay_binary
    from unicity_infra.errors import ImageBuildError

    try:
        with image_build_lock():
            return relay_binary()
    except ImageBuildError as exc:
        pytest.fail(f"nostr-rs-relay is needed and could not be built: {exc}; or set NOSTR_RS_RELAY_BIN")


@contextlib.contextmanager
def run_relay(binary: Path, directory: Path, *, limits: str = "") -> Iterator[int]:
    """Run nostr-rs-relay on a free loopback port and yield the port.

    LIMITS is the body of the ``[limits]`` table; the default leaves the kind policy open.
    """
    port = free_port()
    data_directory = directory / f"relay-db-{port}"
    data_directory.mkdir()
    config_file = directory / f"relay-config-{port}.toml"
    # No event_kind_allowlist: any list, even an empty one, blocks every kind not in it.
    config_file.write_text(
        "[info]\n"
        f'relay_url = "ws://127.0.0.1:{port}/"\n'
        'name = "unicity-infra probe test relay"\n'
        "[database]\n"
        f'data_directory = "{data_directory}"\n'
        "[network]\n"
        'address = "127.0.0.1"\n'
        f"port = {port}\n"
        f"[limits]\n{limits}\n"
    )
    log_file = (directory / f"relay-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "--config", str(config_file)], stdout=log_file, stderr=subprocess.STDOUT, cwd=directory
    )
    try:
        wait_for_port(port, timeout_s=30, process=process)
        yield port
    finally:
        _stop(process)
        log_file.close()


@contextlib.contextmanager
def run_nginx_tls_proxy(files: CertificateFiles, upstream_port: int, directory: Path) -> Iterator[int]:
    """Run nginx terminating TLS with FILES on a free port and proxying websockets to UPSTREAM_PORT."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    prefix = directory / "nginx"
    prefix.mkdir()
    config_file = prefix / "nginx.conf"
    config_file.write_text(
        "daemon off;\n"
        # Workers would otherwise drop to 'nobody', who cannot enter pytest's 0700 temp directories.
        f"{'user root;' if os.geteuid() == 0 else ''}\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {prefix}/access.log;\n"
        f"  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fastcgi;\n"
        f"  uwsgi_temp_path {prefix}/uwsgi;\n"
        f"  scgi_temp_path {prefix}/scgi;\n"
        "  server {\n"
        f"    listen 127.0.0.1:{port} ssl;\n"
        f"    ssl_certificate {files.cert_file};\n"
        f"    ssl_certificate_key {files.key_file};\n"
        "    location / {\n"
        f"      proxy_pass http://127.0.0.1:{upstream_port};\n"
        "      proxy_http_version 1.1;\n"
        "      proxy_set_header Upgrade $http_upgrade;\n"
        '      proxy_set_header Connection "upgrade";\n'
        "      proxy_set_header Host $host;\n"
        "      proxy_read_timeout 300s;\n"
        "    }\n"
        "  }\n"
        "}\n"
    )
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=(prefix / "stderr.log").open("wb"),
    )
    try:
        wait_for_port(port, timeout_s=15, process=process)
        yield port
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
