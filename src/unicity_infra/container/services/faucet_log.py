"""The faucet's identity as its own log lines announce it, one faucet process at a time.

js-faucet prints compact pino JSON lines with a ``msg`` key. Two of them carry
its identity: ``faucet_chain_pubkey_announced`` (the full compressed chain
pubkey) and ``nametag_verified``. ``sphere_initialized`` carries only a
truncated pubkey, so its ``pubkey`` field is never used.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "CHAIN_PUBKEY_ANNOUNCED",
    "NAMETAG_VERIFIED",
    "FaucetIdentity",
    "IdentityTracker",
    "is_compressed_pubkey",
    "parse_log_line",
    "apply_log_line",
]

logger = logging.getLogger(__name__)

CHAIN_PUBKEY_ANNOUNCED = "faucet_chain_pubkey_announced"
NAMETAG_VERIFIED = "nametag_verified"
STARTUP_FAILED = "faucet_acp_startup_failed"

# A compressed secp256k1 public key: prefix 02 or 03 (the parity of y), then x as 64 hex digits.
_COMPRESSED_PUBKEY = re.compile(r"^0[23][0-9a-f]{64}$")


def is_compressed_pubkey(value: object) -> bool:
    """Tell whether VALUE is a compressed secp256k1 public key in lower-case hex (66 digits).

    >>> is_compressed_pubkey("02" + "ab" * 32), is_compressed_pubkey("02abcdef...")
    (True, False)
    """
    return isinstance(value, str) and bool(_COMPRESSED_PUBKEY.match(value))


@dataclass(frozen=True)
class FaucetIdentity:
    """Identity announced so far by one faucet process; empty until its first identity line."""

    chain_pubkey: str | None = None
    nametag: str | None = None

    @property
    def direct_address(self) -> str | None:
        """The address wallets send to: ``DIRECT://<chain pubkey>``."""
        return f"DIRECT://{self.chain_pubkey}" if self.chain_pubkey else None


def parse_log_line(line: str) -> dict[str, Any] | None:
    """Return LINE as a JSON object if it is one with a string ``msg``, else None.

    >>> parse_log_line('{"level":30,"msg":"faucet_running"}')
    {'level': 30, 'msg': 'faucet_running'}
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("msg"), str):
        return None
    return document


def apply_log_line(identity: FaucetIdentity, line: str) -> FaucetIdentity:
    """Return IDENTITY updated with what LINE announces; other lines leave it unchanged."""
    document = parse_log_line(line)
    if document is None:
        return identity

    message = document["msg"]
    if message == CHAIN_PUBKEY_ANNOUNCED:
        pubkey = document.get("chain_pubkey")
        if isinstance(pubkey, str) and is_compressed_pubkey(pubkey.lower()):
            return replace(identity, chain_pubkey=pubkey.lower())
        logger.warning("ignored %s line without a 66-hex compressed chain_pubkey: %.200s", message, line.strip())
    elif message == NAMETAG_VERIFIED:
        nametag = document.get("nametag")
        if isinstance(nametag, str) and nametag.strip():
            return replace(identity, nametag=nametag.strip())
    elif message == STARTUP_FAILED:
        logger.warning("the faucet reported that its start-up failed; the supervisor restarts it")
    return identity


class IdentityTracker:
    """Keeps the identity of the faucet process that runs now, fed by its stdout lines.

    Each start of the faucet gets a fresh, empty identity from :meth:`watch_new_process`,
    so a restarted process is ready only once it announces its own chain pubkey,
    and lines a finished process left in its pipe change nothing. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._identity = FaucetIdentity()

    def watch_new_process(self) -> Callable[[str], None]:
        """Forget the last identity and return the line handler for the process starting now."""
        with self._lock:
            self._generation += 1
            self._identity = FaucetIdentity()
            generation = self._generation

        def handle_line(line: str) -> None:
            with self._lock:
                if generation == self._generation:
                    self._identity = apply_log_line(self._identity, line)

        return handle_line

    def identity(self) -> FaucetIdentity:
        with self._lock:
            return self._identity

    def readiness(self, timeout_s: float) -> str | None:
        """Return None once the current process has announced its chain pubkey, else why not."""
        if self.identity().chain_pubkey is None:
            return f"the faucet has not printed {CHAIN_PUBKEY_ANNOUNCED} yet"
        return None
