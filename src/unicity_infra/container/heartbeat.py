"""The heartbeat: a thread that keeps this container's registrations on the edge.

Every ``HAPROXY_HEARTBEAT_S`` it requests each name's registration from the edge and
registers again what is missing, so an edge that restarted without its state routes
the container again within one interval. Failures are counted and logged at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from unicity_infra.container.edge_link import EdgeLink
from unicity_infra.container.registration import RegistrationError

__all__ = ["Heartbeat"]

logger = logging.getLogger(__name__)


class Heartbeat:
    """Runs ``EdgeLink.repair`` every ``interval_s``, and sooner (``retry_s``) after a failure.

    ``start`` and ``stop`` may each be called once; ``beat`` runs one check in the caller's thread.
    """

    def __init__(
        self,
        link: EdgeLink,
        *,
        interval_s: float = 30.0,
        retry_s: float = 5.0,
        log_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.interval_s = interval_s
        self.retry_s = min(retry_s, interval_s)
        self.log_every_s = log_every_s
        self.failures = 0
        self.repairs = 0
        self._clock = clock
        self._consecutive_failures = 0
        self._failures_since_log = 0
        self._last_failure_log: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-heartbeat", daemon=True)

    def start(self) -> None:
        logger.info("heartbeat started interval=%gs edge=%s names=%s", self.interval_s, self.link.api_url, ",".join(self.link.names))
        self._thread.start()

    def stop(self, *, timeout_s: float = 1.0) -> None:
        """Stop the thread; waits at most TIMEOUT_S for a check in flight, which then ends on its own."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def beat(self) -> bool:
        """Check the registrations once and repair them; return whether the edge replied."""
        try:
            repaired = self.link.repair()
        except RegistrationError as exc:
            self._record_failure(exc)
            return False

        if self._consecutive_failures:
            logger.info("edge replies again after %d failed heartbeat checks", self._consecutive_failures)
        self._consecutive_failures = 0
        self._failures_since_log = 0
        self._last_failure_log = None
        if repaired:
            self.repairs += len(repaired)
            logger.info(
                "re-registered with the edge names=%s https_port=%s repairs=%d",
                ",".join(repaired), self.link.https_port, self.repairs,
            )
        return True

    # -- internals -----------------------------------------------------------------

    def _loop(self) -> None:
        delay_s = self.interval_s
        while not self._stop.wait(delay_s):
            delay_s = self.interval_s if self.beat() else self.retry_s

    def _record_failure(self, exc: RegistrationError) -> None:
        self.failures += 1
        self._consecutive_failures += 1
        self._failures_since_log += 1
        now = self._clock()
        if self._last_failure_log is not None and now - self._last_failure_log < self.log_every_s:
            return
        logger.warning(
            "heartbeat check failed (%d failures since the last report, %d in all): %s",
            self._failures_since_log, self.failures, exc,
        )
        self._failures_since_log = 0
        self._last_failure_log = now
