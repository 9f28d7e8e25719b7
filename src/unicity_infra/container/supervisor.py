"""Supervision of the container's child processes: start, restart with backoff, stop in order.

Children run in their own session, so a terminal's Ctrl-C reaches only the
supervisor, which then stops them in the order they were added: nginx before
the service, so no request reaches a service that is shutting down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from unicity_infra.container.config import BackoffPolicy

__all__ = [
    "STARTING",
    "RUNNING",
    "RESTARTING",
    "FAILED",
    "STOPPED",
    "ReadinessProbe",
    "StdoutWatcher",
    "ProcessSpec",
    "ProcessStatus",
    "Supervisor",
    "exit_status_of",
]

logger = logging.getLogger(__name__)

STARTING = "starting"
RUNNING = "running"
RESTARTING = "restarting"
FAILED = "failed"
STOPPED = "stopped"

# Called with a timeout in seconds; returns None when the child is ready, else the reason it is not.
ReadinessProbe = Callable[[float], "str | None"]
# Called at each start of a child; returns the function that receives that process's stdout lines.
StdoutWatcher = Callable[[], Callable[[str], None]]

# Serializes whole lines from the children's stdout pumps onto the supervisor's stdout.
_STDOUT_LOCK = threading.Lock()
_MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one child: argv, environment, identity and optional readiness probe.

    ``uid``/``gid`` are applied only when the supervisor runs as root; otherwise
    the child runs as the supervisor's own user. With a ``stdout_watcher`` the
    child's stdout goes through a pipe: each line is copied unchanged to the
    supervisor's stdout, then handed to the watcher's line handler.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    uid: int | None = None
    gid: int | None = None
    cwd: Path | None = None
    readiness_probe: ReadinessProbe | None = None
    stop_signal: int = signal.SIGTERM
    stdout_watcher: StdoutWatcher | None = None


@dataclass(frozen=True)
class ProcessStatus:
    """A snapshot of one child's supervision state, as the status server reports it."""

    name: str
    state: str
    pid: int | None
    restarts: int
    last_exit_code: int | None
    started_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "started_at": _iso_utc(self.started_at),
        }


def exit_status_of(returncode: int) -> int:
    """Convert a Popen return code to a shell-style exit status (signal N gives 128+N).

    >>> exit_status_of(-9)
    137
    """
    return 128 - returncode if returncode < 0 else returncode


class _Child:
    """Mutable bookkeeping of one supervised child; guarded by the supervisor's lock."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.popen: subprocess.Popen[bytes] | None = None
        self.state = STOPPED
        self.restarts = 0
        self.spawn_count = 0
        self.last_exit_code: int | None = None
        self.started_at: datetime | None = None
        self.started_monotonic = 0.0
        self.consecutive_failures = 0
        self.next_start_at: float | None = None
        self.next_probe_at = 0.0
        self.stopped_by_us = False

    def snapshot(self) -> ProcessStatus:
        pid = self.popen.pid if self.popen is not None and self.state in (STARTING, RUNNING) else None
        return ProcessStatus(
            name=self.spec.name,
            state=self.state,
            pid=pid,
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            started_at=self.started_at,
        )


class Supervisor:
    """Starts children, restarts them after a crash with exponential backoff, stops them in order.

    Not thread-safe except for ``status``/``statuses``, which the status server
    calls from its own thread, and ``request_stop``, which is signal-safe.
    """

    def __init__(
        self,
        *,
        stop_grace_s: float = 8.0,
        backoff: BackoffPolicy | None = None,
        poll_interval_s: float = 0.1,
        readiness_interval_s: float = 0.5,
        readiness_timeout_s: float = 1.0,
        front_stop_share: float = 0.25,
    ) -> None:
        self.stop_grace_s = stop_grace_s
        self.backoff = backoff or BackoffPolicy()
        self.poll_interval_s = poll_interval_s
        self.readiness_interval_s = readiness_interval_s
        self.readiness_timeout_s = readiness_timeout_s
        self.front_stop_share = front_stop_share
        self._children: dict[str, _Child] = {}
        self._primary: str | None = None
        self._lock = threading.Lock()
        self._stop_signal: int | None = None

    # -- configuration -----------------------------------------------------

    def add(self, spec: ProcessSpec, *, primary: bool = False) -> None:
        """Register SPEC; the PRIMARY child's exit status becomes the supervisor's."""
        if spec.name in self._children:
            raise ValueError(f"a child named {spec.name!r} is already supervised")
        with self._lock:
            self._children[spec.name] = _Child(spec)
        if primary:
            self._primary = spec.name

    def set_env(self, name: str, env: Mapping[str, str]) -> None:
        """Replace the environment child NAME gets from its next start on; raises KeyError for an unknown name."""
        with self._lock:
            child = self._children[name]
            child.spec = replace(child.spec, env=dict(env))

    def install_signal_handlers(self) -> None:
        """Turn SIGTERM and SIGINT into a stop request; call from the main thread."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- queries -------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    def status(self, name: str) -> ProcessStatus:
        """Return a snapshot of child NAME; raises KeyError for an unknown name."""
        with self._lock:
            return self._children[name].snapshot()

    def statuses(self) -> list[ProcessStatus]:
        with self._lock:
            return [child.snapshot() for child in self._children.values()]

    # -- actions -------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the supervision loop to stop all children; safe to call from a signal handler."""
        # Only a plain assignment here: taking a lock inside a signal handler can
        # deadlock against the interrupted main thread holding the same lock.
        if self._stop_signal is None:
            self._stop_signal = signum

    def start(self, name: str) -> None:
        """Spawn child NAME now; a spawn error leaves it "failed" with a restart scheduled."""
        with self._lock:
            self._spawn(self._children[name], time.monotonic())

    def send_signal(self, name: str, signum: int) -> bool:
        """Send SIGNUM to child NAME if it is alive; returns whether it was sent."""
        with self._lock:
            child = self._children[name]
            if child.popen is None or child.popen.poll() is not None:
                return False
            child.popen.send_signal(signum)
            return True

    def poll_once(self) -> None:
        """Reap exited children, restart those whose backoff has passed, probe readiness."""
        now = time.monotonic()
        with self._lock:
            children = list(self._children.values())
        for child in children:
            with self._lock:
                self._reap(child, now)
                if self._is_restart_due(child, now):
                    self._spawn(child, now)
            if child.state == STARTING and now >= child.next_probe_at:
                self._probe(child)

    def run(self) -> int:
        """Supervise until a stop is requested, then stop every child and return the exit status."""
        while not self.stop_requested:
            self.poll_once()
            # time.sleep resumes after a signal handler ran (PEP 475), so the stop
            # request is seen at most one poll interval later.
            time.sleep(self.poll_interval_s)
        return self.stop_all()

    def stop_all(self) -> int:
        """Stop every child in the order added, within the stop grace; return the exit status.

        The exit status is the primary child's: 0 when it exited with 0 or from
        our stop signal, its own code otherwise, 128+N when killed by signal N.
        A child waiting out a restart backoff reports the status of its last exit.
        """
        deadline = time.monotonic() + self.stop_grace_s
        with self._lock:
            children = list(self._children.values())
        for index, child in enumerate(children):
            is_last = index == len(children) - 1
            # Every child but the last gets a share of the grace, so the last one
            # (normally the service) still gets most of it.
            remaining = max(deadline - time.monotonic(), 0.0)
            budget = remaining if is_last else remaining * self.front_stop_share
            self._stop_child(child, budget)
        return self._exit_status()

    # -- internals -----------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    def _spawn(self, child: _Child, now: float) -> None:
        spec = child.spec
        is_restart = child.spawn_count > 0
        child.spawn_count += 1
        options = _popen_options(spec)
        line_handler = spec.stdout_watcher() if spec.stdout_watcher is not None else None
        if line_handler is not None:
            options["stdout"] = subprocess.PIPE
        try:
            child.popen = subprocess.Popen(spec.argv, **options)
        except OSError as exc:
            child.popen = None
            child.state = FAILED
            child.consecutive_failures += 1
            delay_s = self.backoff.delay_s(child.consecutive_failures)
            child.next_start_at = now + delay_s
            logger.error(
                "could not start %s: %s; retrying in %.1f s attempt=%d",
                spec.name, exc, delay_s, child.consecutive_failures,
            )
            return

        if line_handler is not None:
            _start_stdout_pump(child.popen, spec.name, line_handler)
        if is_restart:
            child.restarts += 1
        child.state = STARTING if spec.readiness_probe is not None else RUNNING
        child.started_at = datetime.now(timezone.utc)
        child.started_monotonic = now
        child.next_start_at = None
        child.next_probe_at = now
        child.stopped_by_us = False
        logger.info(
            "started %s pid=%d restarts=%d argv=%s", spec.name, child.popen.pid, child.restarts, " ".join(spec.argv)
        )

    def _is_restart_due(self, child: _Child, now: float) -> bool:
        if child.state not in (RESTARTING, FAILED) or child.next_start_at is None:
            return False
        return now >= child.next_start_at and not self.stop_requested

    def _reap(self, child: _Child, now: float) -> None:
        if child.popen is None or child.state not in (STARTING, RUNNING):
            return
        returncode = child.popen.poll()
        if returncode is None:
            return

        ran_s = now - child.started_monotonic
        child.last_exit_code = exit_status_of(returncode)
        if ran_s >= self.backoff.reset_after_s:
            child.consecutive_failures = 0
        child.consecutive_failures += 1
        delay_s = self.backoff.delay_s(child.consecutive_failures)
        child.state = RESTARTING
        child.next_start_at = now + delay_s
        logger.warning(
            "%s exited with status %d after %.1f s; restarting in %.1f s attempt=%d",
            child.spec.name, child.last_exit_code, ran_s, delay_s, child.consecutive_failures,
        )

    def _probe(self, child: _Child) -> None:
        probe = child.spec.readiness_probe
        assert probe is not None  # only children with a probe are ever STARTING
        reason = probe(self.readiness_timeout_s)
        now = time.monotonic()
        with self._lock:
            if child.state != STARTING:
                return
            if reason is None:
                child.state = RUNNING
                logger.info("%s is ready after %.1f s", child.spec.name, now - child.started_monotonic)
            else:
                child.next_probe_at = now + self.readiness_interval_s
                logger.debug("%s not ready yet: %s", child.spec.name, reason)

    def _stop_child(self, child: _Child, budget_s: float) -> None:
        with self._lock:
            popen = child.popen
            child.next_start_at = None
            if popen is None or popen.poll() is not None:
                if popen is not None and child.state in (STARTING, RUNNING):
                    child.last_exit_code = exit_status_of(popen.returncode)
                child.state = STOPPED
                return
            child.stopped_by_us = True

        signal_name = signal.Signals(child.spec.stop_signal).name
        logger.info("stopping %s pid=%d signal=%s grace=%.1f s", child.spec.name, popen.pid, signal_name, budget_s)
        popen.send_signal(child.spec.stop_signal)
        try:
            popen.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.1f s; killing its process group", child.spec.name, budget_s)
            _kill_group(popen)
            popen.wait()

        with self._lock:
            child.last_exit_code = exit_status_of(popen.returncode)
            child.state = STOPPED
        logger.info("stopped %s with status %d", child.spec.name, child.last_exit_code)

    def _exit_status(self) -> int:
        if self._primary is None:
            return 0
        with self._lock:
            child = self._children[self._primary]
            code = child.last_exit_code
            stopped_by_us = child.stopped_by_us
            stop_signal = child.spec.stop_signal
        if code is None:
            return 0
        if stopped_by_us and code == 128 + stop_signal:
            return 0
        return code


def _popen_options(spec: ProcessSpec) -> dict[str, Any]:
    options: dict[str, Any] = {
        "env": dict(spec.env) if spec.env is not None else None,
        "cwd": str(spec.cwd) if spec.cwd is not None else None,
        "stdin": subprocess.DEVNULL,
        "close_fds": True,
        # A new session keeps terminal signals (Ctrl-C to the foreground group) away from children.
        "start_new_session": True,
    }
    if os.geteuid() == 0 and spec.uid is not None:
        options["user"] = spec.uid
        options["group"] = spec.gid if spec.gid is not None else spec.uid
        # Drop root's supplementary groups as well; otherwise the child keeps group 0.
        options["extra_groups"] = []
    return options


def _start_stdout_pump(popen: subprocess.Popen[bytes], name: str, handle_line: Callable[[str], None]) -> None:
    assert popen.stdout is not None
    thread = threading.Thread(
        target=_pump_stdout, args=(popen.stdout, name, handle_line), name=f"stdout-{name}-{popen.pid}", daemon=True
    )
    thread.start()


def _pump_stdout(stream: Any, name: str, handle_line: Callable[[str], None]) -> None:
    """Copy STREAM line by line to our stdout, then hand each line to HANDLE_LINE, until EOF."""
    failures = 0
    with stream:
        for line in iter(lambda: stream.readline(_MAX_LINE_BYTES), b""):
            # Reading goes on even when our stdout fails: a pipe left unread would block the child.
            with _STDOUT_LOCK, contextlib.suppress(OSError, ValueError):
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()
            try:
                handle_line(line.decode("utf-8", "replace"))
            except Exception:  # a broken handler must not stop the pass-through
                failures += 1
                if failures == 1:
                    logger.exception("handling a stdout line of %s failed; later failures are only counted", name)
    if failures > 1:
        logger.warning("handling stdout lines of %s failed %d times", name, failures)


def _kill_group(popen: subprocess.Popen[bytes]) -> None:
    # The child leads its own process group (start_new_session), so this also
    # reaches its workers, e.g. nginx's worker processes.
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
