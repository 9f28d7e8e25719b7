"""The local edge's ACME CA: Pebble and pebble-challtestsrv as supervised children.

challtestsrv answers every DNS name with the edge's own address, so Pebble's
HTTP-01 validation reaches HAProxy's port 80 and is routed by Host to the
service, as Let's Encrypt's validation is in production. Pebble issues from a
new root on every start, so every root it has used is kept in one bundle file
that clients trust.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalCA", "LocalCAError", "start_local_ca", "own_address"]

logger = logging.getLogger(__name__)

ACME_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_ADDRESS = "127.0.0.1:8053"
CHALLENGE_MANAGEMENT_ADDRESS = "127.0.0.1:8055"
START_TIMEOUT_S = 20.0


class LocalCAError(Exception):
    """Pebble or challtestsrv could not be started."""


@dataclass
class LocalCA:
    """A running Pebble with the files clients need."""

    directory_url: str
    listener_ca_file: Path
    roots_file: Path
    processes: list[subprocess.Popen]

    def stop(self, *, grace_s: float = 5.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()

    def failed_process(self) -> subprocess.Popen | None:
        """Return a child that has exited, if any."""
        return next((process for process in self.processes if process.poll() is not None), None)


def own_address() -> str:
    """Return this container's IPv4 address on its primary network."""
    return socket.gethostbyname(socket.gethostname())


def _openssl(*arguments: str) -> None:
    result = subprocess.run(["openssl", *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalCAError(f"openssl {arguments[0]} failed: {result.stderr.strip()[-300:]}")


def _san_entry(name: str) -> str:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return f"DNS:{name}"
    return f"IP:{name}"


def ensure_listener_certificate(directory: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """Create, once, a CA and a certificate for Pebble's own HTTPS listener covering NAMES.

    Returns (ca_file, certificate_file, key_file). Kept across restarts so that
    clients that saved the CA file keep trusting the listener.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_file = directory / "listener-ca.key", directory / "listener-ca.pem"
    key, cert = directory / "listener.key", directory / "listener.pem"
    names_file = directory / "listener-names.json"
    if cert.exists() and names_file.exists() and json.loads(names_file.read_text()) == names:
        return ca_file, cert, key

    if not ca_file.exists():
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA needs its key usage marked.
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_file),
                 "-days", "3650", "-subj", "/CN=unicity-infra local ACME listener CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = directory / "listener.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={names[0]}")
    extensions = directory / "listener.ext"
    extensions.write_text(
        "subjectAltName=" + ",".join(_san_entry(name) for name in names) + "\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "basicConstraints=critical,CA:FALSE\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_file), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "3650", "-extfile", str(extensions))
    names_file.write_text(json.dumps(names))
    os.chmod(key, 0o600)
    os.chmod(ca_key, 0o600)
    return ca_file, cert, key


def _wait_for_port(address: tuple[str, int], process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalCAError(f"{name} exited with status {process.returncode} before listening on {address[0]}:{address[1]}")
        try:
            with socket.create_connection(address, timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise LocalCAError(f"{name} did not listen on {address[0]}:{address[1]} within {START_TIMEOUT_S:.0f} s")


def append_issuing_root(roots_file: Path, management_url: str, listener_ca_file: Path) -> None:
    """Fetch Pebble's current issuing root and add it to ROOTS_FILE unless already there."""
    context = ssl.create_default_context(cafile=str(listener_ca_file))
    with urllib.request.urlopen(f"{management_url}/roots/0", context=context, timeout=5) as response:
        root = response.read().decode().strip() + "\n"
    known = roots_file.read_text() if roots_file.exists() else ""
    if root in known:
        return
    temporary = roots_file.with_suffix(".tmp")
    temporary.write_text(known + root)
    os.replace(temporary, roots_file)
    logger.info("added Pebble issuing root to bundle file=%s", roots_file)


def start_local_ca(
    state_dir: Path,
    *,
    answer_ipv4: str,
    listener_names: list[str],
    http_port: int = 80,
    certificate_validity_s: int | None = None,
) -> LocalCA:
    """Start challtestsrv and Pebble; HTTP-01 validation goes to ANSWER_IPV4:HTTP_PORT.

    Raises LocalCAError when either does not come up; nothing is left running then.
    """
    directory = state_dir / "acme"
    listener_ca, cert, key = ensure_listener_certificate(directory, listener_names)
    pebble_config: dict[str, object] = {
        "listenAddress": f"0.0.0.0:{ACME_PORT}",
        "managementListenAddress": f"127.0.0.1:{MANAGEMENT_PORT}",
        "certificate": str(cert),
        "privateKey": str(key),
        "httpPort": http_port,
        "tlsPort": 5001,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
    if certificate_validity_s:
        pebble_config["certificateValidityPeriod"] = certificate_validity_s
    config_file = directory / "pebble-config.json"
    config_file.write_text(json.dumps({"pebble": pebble_config}, indent=2))

    # No artificial validation delay; no random nonce rejections (they only add retries).
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    dns = subprocess.Popen(
        ["pebble-challtestsrv", "-defaultIPv4", answer_ipv4, "-defaultIPv6", "",
         "-dns01", DNS_ADDRESS, "-http01", "", "-https01", "", "-tlsalpn01", "",
         "-management", CHALLENGE_MANAGEMENT_ADDRESS],
    )
    pebble = subprocess.Popen(["pebble", "-config", str(config_file), "-dnsserver", DNS_ADDRESS], env=env)
    ca = LocalCA(
        directory_url=f"https://{listener_names[0]}:{ACME_PORT}/dir",
        listener_ca_file=listener_ca,
        roots_file=state_dir / "issuing-roots.pem",
        processes=[pebble, dns],
    )
    try:
        host, port = CHALLENGE_MANAGEMENT_ADDRESS.rsplit(":", 1)
        _wait_for_port((host, int(port)), dns, "pebble-challtestsrv")
        _wait_for_port(("127.0.0.1", ACME_PORT), pebble, "pebble")
        _wait_for_port(("127.0.0.1", MANAGEMENT_PORT), pebble, "pebble")
        append_issuing_root(ca.roots_file, f"https://127.0.0.1:{MANAGEMENT_PORT}", listener_ca)
    except Exception:
        ca.stop()
        raise
    logger.info("local ACME CA ready directory=%s answers=%s", ca.directory_url, answer_ipv4)
    return ca
