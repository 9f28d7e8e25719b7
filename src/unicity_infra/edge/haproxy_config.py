"""Registrations to haproxy.cfg: the Backend model, validation, rendering, and the haproxy process.

The model, ``render_haproxy_config``, ``parse_backends`` and ``dump_backends`` are pure.
``check_config`` runs ``haproxy -c``; ``HAProxyProcess`` runs haproxy in master-worker mode
as a child, reloads it without dropping connections and restarts it when it dies.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra.edge.errors import ConfigRejectedError, HAProxyError, InvalidFieldError

__all__ = [
    "DEFAULT_API_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_HTTPS_PORT",
    "DOCKER_NAMESERVER",
    "EXTRA_PORT_MODES",
    "ExtraPort",
    "Backend",
    "parse_domain_name",
    "parse_backend",
    "parse_backends",
    "dump_backends",
    "render_haproxy_config",
    "check_config",
    "haproxy_messages",
    "MasterStatus",
    "parse_show_proc",
    "HAProxyProcess",
]

logger = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 80
DEFAULT_HTTPS_PORT = 443
DEFAULT_API_PORT = 8404
# Docker's embedded DNS server, reachable from every container on a user-defined network.
DOCKER_NAMESERVER = "127.0.0.11:53"
EXTRA_PORT_MODES = ("http", "tcp")
STATE_VERSION = 1

# RFC 1123 host-name label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Docker's rule for container names; it also admits the IPv4 literals used on loopback.
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_MAX_NAME_LENGTH = 253
_EXTRA_PORT_KEYS = {"listen", "target", "mode"}


@dataclass(frozen=True)
class ExtraPort:
    """A listener the edge opens on ``listen`` and forwards to the container's ``target``."""

    listen: int
    target: int
    mode: str

    def to_json(self) -> dict[str, object]:
        return {"listen": self.listen, "target": self.target, "mode": self.mode}


@dataclass(frozen=True)
class Backend:
    """One registration: a domain routed to a container's HTTP port and, once it has TLS, its HTTPS port."""

    domain: str
    container: str
    http_port: int = DEFAULT_HTTP_PORT
    https_port: int | None = None
    extra_ports: tuple[ExtraPort, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "container": self.container,
            "http_port": self.http_port,
            "https_port": self.https_port,
            "extra_ports": [port.to_json() for port in self.extra_ports],
        }


# --- validation -----------------------------------------------------------------------------


def parse_domain_name(value: object, *, field_name: str = "domain") -> str:
    """Return ``value`` lower-cased if it is an RFC 1123 host name, e.g. ``'Relay.Test'`` → ``'relay.test'``.

    Raises InvalidFieldError naming ``field_name`` otherwise.
    """
    if not isinstance(value, str) or not value:
        raise InvalidFieldError(field_name, "expected a host name such as relay.example.org")

    name = value.lower()
    if "_" in name:
        raise InvalidFieldError(field_name, f"invalid host name {value!r}: host names cannot contain '_'; use a hyphen")
    if len(name) > _MAX_NAME_LENGTH:
        raise InvalidFieldError(field_name, f"invalid host name {value!r}: a host name has at most 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise InvalidFieldError(
                field_name,
                f"invalid host name {value!r}: label {label!r} must be 1-63 letters, digits or inner hyphens",
            )
    if _is_ip_literal(name):
        raise InvalidFieldError(field_name, f"invalid host name {value!r}: expected a host name, not an IP address")
    return name


def _is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_container(value: object) -> str:
    if not isinstance(value, str) or not _DOCKER_NAME.match(value) or len(value) > _MAX_NAME_LENGTH:
        raise InvalidFieldError(
            "container",
            f"invalid container {value!r}: expected a Docker container name or host name "
            "(letters, digits, '_', '.', '-') or an IPv4 address",
        )
    return value


def _parse_port(value: object, field_name: str) -> int:
    # bool is a subclass of int in Python; JSON true must not pass as port 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidFieldError(field_name, f"invalid port {value!r}: expected an integer from 1 to 65535")
    return value


def _parse_extra_ports(value: object) -> tuple[ExtraPort, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidFieldError("extra_ports", "expected a list of {listen, target, mode} objects or null")

    ports: list[ExtraPort] = []
    for index, item in enumerate(value):
        where = f"extra_ports[{index}]"
        if not isinstance(item, dict) or set(item) != _EXTRA_PORT_KEYS:
            raise InvalidFieldError(where, "expected an object with exactly the keys listen, target, mode")
        listen = _parse_port(item["listen"], f"{where}.listen")
        target = _parse_port(item["target"], f"{where}.target")
        mode = item["mode"]
        if mode not in EXTRA_PORT_MODES:
            raise InvalidFieldError(f"{where}.mode", f'invalid mode {mode!r}: expected "http" or "tcp"')
        if any(port.listen == listen for port in ports):
            raise InvalidFieldError(f"{where}.listen", f"listen port {listen} appears twice in this registration")
        ports.append(ExtraPort(listen=listen, target=target, mode=mode))
    return tuple(ports)


def parse_backend(payload: object) -> Backend:
    """Build a Backend from a registration's JSON object, validating every field.

    ``http_port`` defaults to 80, ``https_port`` and ``extra_ports`` to null. Unknown keys
    (such as ``tunnel_peer_ip`` from newer clients) are ignored. Raises InvalidFieldError.
    """
    if not isinstance(payload, dict):
        raise InvalidFieldError("body", "expected a JSON object with domain, container, http_port, https_port")

    domain = parse_domain_name(payload.get("domain"))
    container = _parse_container(payload.get("container"))
    http_port = _parse_port(payload.get("http_port", DEFAULT_HTTP_PORT), "http_port")
    https_value = payload.get("https_port")
    https_port = None if https_value is None else _parse_port(https_value, "https_port")
    extra_ports = _parse_extra_ports(payload.get("extra_ports"))

    return Backend(
        domain=domain,
        container=container,
        http_port=http_port,
        https_port=https_port,
        extra_ports=extra_ports,
    )


# --- state file text --------------------------------------------------------------------------


def dump_backends(backends: Iterable[Backend]) -> str:
    """Serialize registrations as the state file's JSON text, sorted by domain."""
    ordered = sorted(backends, key=lambda backend: backend.domain)
    document = {"version": STATE_VERSION, "backends": [backend.to_json() for backend in ordered]}
    return json.dumps(document, indent=2) + "\n"


def parse_backends(json_text: str) -> list[Backend]:
    """Parse the state file's JSON text back into registrations.

    Raises InvalidFieldError naming the entry, e.g. ``backends[2].domain``, or ValueError for
    text that is not JSON or has another version.
    """
    document = json.loads(json_text)
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise ValueError(f"expected a JSON object with \"version\": {STATE_VERSION} and a \"backends\" list")
    entries = document.get("backends")
    if not isinstance(entries, list):
        raise ValueError('expected "backends" to be a list')

    backends: list[Backend] = []
    for index, entry in enumerate(entries):
        try:
            backends.append(parse_backend(entry))
        except InvalidFieldError as exc:
            raise InvalidFieldError(f"backends[{index}].{exc.field}", exc.message) from None
    return backends


# --- haproxy.cfg ------------------------------------------------------------------------------


def render_haproxy_config(
    backends: Sequence[Backend],
    *,
    http_port: int = DEFAULT_HTTP_PORT,
    https_port: int = DEFAULT_HTTPS_PORT,
    api_port: int = DEFAULT_API_PORT,
    bind_address: str = "",
    resolvers: str | None = "docker",
    nameserver: str = DOCKER_NAMESERVER,
    stats_socket: str | None = None,
) -> str:
    """Render the whole haproxy.cfg for ``backends``.

    ``bind_address`` empty binds every IPv4 address; tests pass ``127.0.0.1``. With
    ``resolvers="docker"`` container names are re-resolved at run time through ``nameserver``;
    with ``None`` they are resolved once through libc when HAProxy loads the file.
    Raises ValueError if an extra port collides with the edge's own ports or two
    registrations claim the same listen port for different targets.
    """
    ordered = sorted(backends, key=lambda backend: backend.domain)
    listeners = _collect_extra_listeners(ordered, reserved={http_port, https_port, api_port})

    sections = [
        f"# Generated by the unicity-infra edge from {len(ordered)} registrations; edits are overwritten.",
        _render_global(stats_socket),
    ]
    if resolvers is not None:
        sections.append(_render_resolvers(resolvers, nameserver))
    sections.append(_render_defaults(resolvers))
    sections.append(_render_http_frontend(ordered, bind_address, http_port))
    sections.append(_render_https_frontend(ordered, bind_address, https_port))
    sections.extend(_render_domain_backends(backend) for backend in ordered)
    sections.extend(_render_extra_listener(container, port, bind_address) for container, port in listeners)
    sections.append(_render_fallback_backends())
    return "\n".join(sections)


def _render_global(stats_socket: str | None) -> str:
    lines = [
        "global",
        "    master-worker",
        "    log stderr format raw local0 notice",
        # After a reload the previous worker keeps serving its open tunnels (idle WebSockets
        # included) until they close; this bounds how long such old workers linger.
        "    hard-stop-after 1h",
    ]
    if stats_socket:
        lines.append(f"    stats socket {stats_socket} mode 600 level admin expose-fd listeners")
    return "\n".join(lines) + "\n"


def _render_resolvers(name: str, nameserver: str) -> str:
    return "\n".join(
        [
            f"resolvers {name}",
            f"    nameserver dns1 {nameserver}",
            "    accepted_payload_size 8192",
            "    resolve_retries 3",
            "    timeout resolve 1s",
            "    timeout retry 1s",
            # A restarted container comes back with a new address; re-resolve often.
            "    hold valid 10s",
            "    hold other 10s",
            "    hold refused 10s",
            "    hold nx 10s",
            "    hold timeout 10s",
            "    hold obsolete 10s",
        ]
    ) + "\n"


def _render_defaults(resolvers: str | None) -> str:
    server_options = "init-addr last,libc,none check inter 5s fall 3 rise 2"
    if resolvers is not None:
        server_options += f" resolvers {resolvers} resolve-prefer ipv4"
    return "\n".join(
        [
            "defaults",
            "    log global",
            "    option dontlognull",
            "    timeout connect 5s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout http-request 10s",
            "    timeout http-keep-alive 10s",
            "    timeout client-fin 30s",
            # TLS passthrough on 443 and WebSockets upgraded on 80 are tunnels once both sides
            # are connected, and this timeout then replaces client/server. Nostr relays ping
            # every 45-300 s, so an idle WSS must outlive the 60 s above; an hour does.
            "    timeout tunnel 1h",
            f"    default-server {server_options}",
        ]
    ) + "\n"


def _bind(bind_address: str, port: int) -> str:
    return f"    bind {bind_address}:{port}"


def _render_http_frontend(backends: Sequence[Backend], bind_address: str, port: int) -> str:
    lines = [
        "frontend http-in",
        "    mode http",
        _bind(bind_address, port),
        "    option forwardfor",
        # Clients may send "Host: name:port" and any letter case; route on the bare lower-case name.
        "    http-request set-var(txn.route_host) req.hdr(host),field(1,:),lower",
    ]
    for backend in backends:
        lines.append(f"    use_backend {_http_backend_name(backend)} if {{ var(txn.route_host) -m str {backend.domain} }}")
    lines.append("    default_backend no-match-http")
    return "\n".join(lines) + "\n"


def _render_https_frontend(backends: Sequence[Backend], bind_address: str, port: int) -> str:
    lines = [
        "frontend https-in",
        "    mode tcp",
        _bind(bind_address, port),
        "    tcp-request inspect-delay 5s",
        # HAProxy 2.6 reports req.ssl_hello_type as "may change" until the whole handshake
        # message announced in the record header is buffered (src/payload.c), so this accept
        # waits for the complete ClientHello even when it arrives in several TCP segments.
        # Requiring the SNI as well keeps the rule false while the name is not yet readable.
        "    tcp-request content accept if { req.ssl_hello_type 1 } { req.ssl_sni -m found }",
        # Bytes that are not a TLS handshake are dropped at once instead of after the delay.
        "    tcp-request content reject if !{ req.ssl_hello_type 1 }",
    ]
    for backend in backends:
        if backend.https_port is not None:
            lines.append(f"    use_backend {_tls_backend_name(backend)} if {{ req.ssl_sni,lower -m str {backend.domain} }}")
    lines.append("    default_backend no-match-tls")
    return "\n".join(lines) + "\n"


def _http_backend_name(backend: Backend) -> str:
    return f"be-http-{backend.domain}"


def _tls_backend_name(backend: Backend) -> str:
    return f"be-tls-{backend.domain}"


def _server_line(container: str, port: int) -> str:
    return f"    server app {container}:{port}"


def _render_domain_backends(backend: Backend) -> str:
    lines = [
        f"backend {_http_backend_name(backend)}",
        "    mode http",
        _server_line(backend.container, backend.http_port),
    ]
    if backend.https_port is not None:
        lines += [
            "",
            f"backend {_tls_backend_name(backend)}",
            "    mode tcp",
            _server_line(backend.container, backend.https_port),
        ]
    return "\n".join(lines) + "\n"


def _collect_extra_listeners(backends: Sequence[Backend], *, reserved: set[int]) -> list[tuple[str, ExtraPort]]:
    """Return one (container, port) per listen port; aliases of one container may repeat a port."""
    by_listen: dict[int, tuple[str, ExtraPort, str]] = {}
    for backend in backends:
        for port in backend.extra_ports:
            if port.listen in reserved:
                raise ValueError(f"extra port {port.listen} of {backend.domain} is one of the edge's own ports")
            known = by_listen.get(port.listen)
            if known is None:
                by_listen[port.listen] = (backend.container, port, backend.domain)
            elif (known[0], known[1]) != (backend.container, port):
                raise ValueError(f"extra port {port.listen} is claimed by both {known[2]} and {backend.domain}")
    return [(container, port) for container, port, _domain in (by_listen[key] for key in sorted(by_listen))]


def _render_extra_listener(container: str, port: ExtraPort, bind_address: str) -> str:
    return "\n".join(
        [
            f"listen extra-{port.listen}",
            f"    mode {port.mode}",
            _bind(bind_address, port.listen),
            _server_line(container, port.target),
        ]
    ) + "\n"


def _render_fallback_backends() -> str:
    return "\n".join(
        [
            "backend no-match-http",
            "    mode http",
            '    http-request return status 503 content-type text/plain string "no backend is registered for this host name\\n"',
            "",
            # No server: a TLS client with an unknown SNI is disconnected.
            "backend no-match-tls",
            "    mode tcp",
        ]
    ) + "\n"


# --- validation by haproxy itself ---------------------------------------------------------------


def check_config(path: Path, *, haproxy_bin: str = "haproxy", timeout_s: float = 30.0) -> None:
    """Run ``haproxy -c -f path``; raise ConfigRejectedError with its output lines when it fails.

    The check parses and resolves the file but binds no port, so a listen port taken by
    another process passes here and fails only at reload.
    """
    command = [haproxy_bin, "-c", "-f", str(path)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigRejectedError("haproxy -c", [f"the check did not finish within {timeout_s:.0f} s"]) from None
    except OSError as exc:
        raise ConfigRejectedError("haproxy -c", [f"cannot run {haproxy_bin!r}: {exc.strerror}"]) from exc

    if completed.returncode != 0:
        lines = haproxy_messages((completed.stdout + completed.stderr).splitlines())
        logger.debug("haproxy -c rejected %s: %s", path, lines)
        raise ConfigRejectedError("haproxy -c", lines[:30])


_MESSAGE_PID = re.compile(r"^\[(ALERT|WARNING)\]\s+\(\d+\)\s+:\s+")


def haproxy_messages(output: Iterable[str], *, alerts_only: bool = False) -> list[str]:
    """Keep haproxy's ALERT and WARNING lines without the pid, e.g. ``[ALERT] config : parsing [...]``.

    With ``alerts_only`` WARNING lines are dropped too. Returns every non-empty line when
    nothing matches.
    """
    lines = [line.strip() for line in output if line.strip()]
    kept = [
        _MESSAGE_PID.sub(lambda match: f"[{match.group(1)}] ", line)
        for line in lines
        if _MESSAGE_PID.match(line) and (not alerts_only or line.startswith("[ALERT]"))
    ]
    return kept or lines


# --- the haproxy process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterStatus:
    """Reload counters and worker pids reported by the master CLI's ``show proc``."""

    reloads: int
    failed_reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


_MASTER_LINE = re.compile(r"^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?")


def parse_show_proc(text: str) -> MasterStatus:
    """Parse the master CLI's ``show proc`` table (HAProxy 2.6 layout).

    The master line reads ``1234  master  2 [failed: 0]  ...``; pids under ``# workers`` serve
    the current configuration, pids under ``# old workers`` finish connections after a reload.
    Raises ValueError when the text has no master line.
    """
    reloads: int | None = None
    failed = 0
    workers: list[int] = []
    old_workers: list[int] = []
    section = "master"

    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("#"):
            section = {"# workers": "workers", "# old workers": "old", "# programs": "programs"}.get(line, section)
            continue
        master = _MASTER_LINE.match(line)
        if master:
            reloads = int(master.group(2))
            failed = int(master.group(3) or 0)
        elif line[:1].isdigit() and section == "workers":
            workers.append(int(line.split()[0]))
        elif line[:1].isdigit() and section == "old":
            old_workers.append(int(line.split()[0]))

    if reloads is None:
        raise ValueError(f"no master line in show proc output: {text[:200]!r}")
    return MasterStatus(reloads=reloads, failed_reloads=failed, workers=tuple(workers), old_workers=tuple(old_workers))


class HAProxyProcess:
    """Runs ``haproxy -W -db`` as a child: start, hitless reload on SIGUSR2, restart when it dies.

    All output of the master and its workers is logged through this module's logger and the
    recent lines are kept, so a failed reload can report haproxy's own ALERT lines.
    """

    def __init__(
        self,
        *,
        config_path: Path,
        master_socket: Path,
        haproxy_bin: str = "haproxy",
        ready_timeout_s: float = 15.0,
        reload_timeout_s: float = 15.0,
        max_restart_delay_s: float = 30.0,
    ) -> None:
        self.config_path = config_path
        self.master_socket = master_socket
        self.haproxy_bin = haproxy_bin
        self.ready_timeout_s = ready_timeout_s
        self.reload_timeout_s = reload_timeout_s
        self.max_restart_delay_s = max_restart_delay_s
        self.restarts = 0
        self.reloads = 0

        # Serializes start, reload, restart and stop, so a SIGUSR2 never hits a master being replaced.
        self._lock = threading.RLock()
        self._process: subprocess.Popen[str] | None = None
        self._started_at = 0.0
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._output: deque[tuple[int, str]] = deque(maxlen=500)
        self._output_seq = 0
        self._output_lock = threading.Lock()

    @property
    def master_pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def is_running(self) -> bool:
        return self.master_pid is not None

    def start(self) -> None:
        """Start haproxy and wait until a worker serves; raise HAProxyError if it does not."""
        with self._lock:
            self._spawn()
            self._wait_ready()
        self._supervisor = threading.Thread(target=self._supervise, name="haproxy-supervisor", daemon=True)
        self._supervisor.start()

    def reload(self) -> None:
        """Make haproxy load the configuration file again without closing open connections.

        Sends SIGUSR2 to the master, which starts new workers on the new file and lets the old
        ones finish their connections. Returns once a new worker serves. Raises
        ConfigRejectedError when haproxy fails to load the file (the old workers keep serving)
        and HAProxyError when no new worker appears in time. If haproxy is down, it only logs: the
        supervisor's restart reads the new file anyway.
        """
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                logger.warning("haproxy is not running; the new configuration loads when it is restarted")
                return
            before = self._wait_status(process, "before reload")
            first_line = self._output_seq
            started = time.monotonic()
            process.send_signal(signal.SIGUSR2)
            self._wait_reloaded(process, before, first_line)
            self.reloads += 1
            logger.debug("reloaded haproxy in %.3f s", time.monotonic() - started)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop haproxy and its workers; safe to call twice."""
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    logger.warning("haproxy master pid=%d ignored SIGTERM for %.0f s; killing it", process.pid, timeout_s)
                    process.kill()
                    process.wait()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout_s)

    def recent_output(self, since_seq: int = 0) -> list[str]:
        with self._output_lock:
            return [line for seq, line in self._output if seq >= since_seq]

    # -- internals --

    def _spawn(self) -> None:
        self.master_socket.unlink(missing_ok=True)
        command = [
            self.haproxy_bin,
            "-W",
            "-db",
            "-S",
            f"{self.master_socket},mode,600",
            "-f",
            str(self.config_path),
        ]
        logger.info("starting %s", " ".join(command))
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise HAProxyError(f"cannot start {self.haproxy_bin!r}: {exc.strerror}; install haproxy or pass its path") from exc
        self._process = process
        self._started_at = time.monotonic()
        threading.Thread(target=self._read_output, args=(process,), name="haproxy-output", daemon=True).start()

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for raw_line in process.stdout:
            line = raw_line.rstrip()
            if not line:
                continue
            with self._output_lock:
                self._output.append((self._output_seq, line))
                self._output_seq += 1
            level = _output_level(line)
            # Workers killed by our own SIGTERM are reported as ALERT lines; they are expected then.
            if self._stopping.is_set():
                level = min(level, logging.INFO)
            logger.log(level, "haproxy: %s", line)

    def _query_status(self) -> MasterStatus | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(2.0)
                connection.connect(str(self.master_socket))
                connection.sendall(b"show proc\n")
                connection.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := connection.recv(65536):
                    chunks.append(chunk)
        except OSError:
            # The master closes its CLI while it re-executes itself during a reload.
            return None
        try:
            return parse_show_proc(b"".join(chunks).decode(errors="replace"))
        except ValueError:
            return None

    def _wait_status(self, process: subprocess.Popen[str], stage: str) -> MasterStatus:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if process.poll() is not None:
                raise HAProxyError(
                    f"haproxy exited with status {process.returncode} {stage}: "
                    f"{'; '.join(haproxy_messages(self.recent_output())[-5:]) or 'no output'}"
                )
            status = self._query_status()
            if status is not None and status.workers:
                return status
            if time.monotonic() > deadline:
                raise HAProxyError(
                    f"haproxy master CLI {self.master_socket} did not list a worker within "
                    f"{self.ready_timeout_s:.0f} s {stage}; see the haproxy lines in the log"
                )
            time.sleep(0.02)

    def _wait_ready(self) -> None:
        assert self._process is not None
        status = self._wait_status(self._process, "at start")
        logger.info("haproxy master pid=%d serves with worker pids=%s", self._process.pid, list(status.workers))

    def _wait_reloaded(self, process: subprocess.Popen[str], before: MasterStatus, first_line: int) -> None:
        deadline = time.monotonic() + self.reload_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise HAProxyError(f"haproxy master exited with status {process.returncode} during a reload")
            status = self._query_status()
            if status is not None and status.reloads > before.reloads:
                if status.failed_reloads > before.failed_reloads:
                    # The master prints its ALERT lines just before the CLI comes back.
                    time.sleep(0.1)
                    # Old workers print "Paused"/"Resumed" warnings around a failed reload; the cause is in the ALERTs.
                    raise ConfigRejectedError("reload", haproxy_messages(self.recent_output(first_line), alerts_only=True)[:30])
                # The reload counter moves as the master re-executes; the new worker appears later.
                if set(status.workers) - set(before.workers):
                    return
            time.sleep(0.01)
        raise HAProxyError(
            f"haproxy did not report a new worker within {self.reload_timeout_s:.0f} s of SIGUSR2; "
            "the running workers keep the previous configuration"
        )

    def _supervise(self) -> None:
        delay_s = 1.0
        while not self._stopping.is_set():
            process = self._process
            if process is not None:
                process.wait()
            if self._stopping.is_set():
                return

            ran_s = time.monotonic() - self._started_at
            if ran_s > 60:
                delay_s = 1.0
            last = "; ".join(haproxy_messages(self.recent_output())[-3:]) or "no output"
            status = process.returncode if process is not None else None
            logger.error("haproxy master exited with status %s after %.0f s (%s); restarting in %.0f s", status, ran_s, last, delay_s)
            if self._stopping.wait(delay_s):
                return
            delay_s = min(delay_s * 2, self.max_restart_delay_s)

            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._spawn()
                    self._wait_ready()
                    self.restarts += 1
                except HAProxyError as exc:
                    logger.error("restarting haproxy failed: %s", exc)


def _output_level(line: str) -> int:
    if line.startswith("[ALERT]"):
        return logging.WARNING
    # NOTICE lines repeat the version and path on every reload. The old worker also prints one
    # line per proxy as it stops. The API logs one line per change instead, so these go to DEBUG.
    if line.startswith("[NOTICE]") or any(marker in line for marker in _RELOAD_CHATTER):
        return logging.DEBUG
    return logging.INFO


_RELOAD_CHATTER = ("stopped (cumulated conns", "Paused ", "Resumed ", "exited with code 0 (Exit)")
