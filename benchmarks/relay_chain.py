"""Compare a relay reached directly with the same relay behind the TLS chain, in one run.

For each target the script opens a subscriber and a publisher connection, publishes
signed kind-1 events one at a time (each waits for its OK), and times every event
from send to arrival on the subscription. Events per second count only the time
from sending each event to its OK. It prints events per second, p50 and p99
publish-to-receive latency, and the TLS/direct ratios. Run on demand, not as a test:

    python benchmarks/relay_chain.py --direct ws://127.0.0.1:7777 \\
        --tls wss://relay.test --connect 127.0.0.1:7443 --ca-file ca.pem --count 500

NOTE: latency varies from run to run more than throughput does. Against
nostr-rs-relay 0.8.12 on loopback, p50 was about 0.7 ms in some runs and 7 to 9 ms
in others, for both targets, so compare several runs before reading the ratio.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import coincurve

from unicity_infra.probes.errors import (
    ProbeError,
    ProbeTimeoutError,
    RelayRejectedError,
)
from unicity_infra.probes.nostr import (
    RelayConnection,
    generate_key,
    open_relay,
    public_key_hex,
    sign_event,
)

logger = logging.getLogger("relay_chain")

MAX_COUNT = 100_000


@dataclass(frozen=True)
class Target:
    """One relay URL to measure and how to reach it."""

    label: str
    url: str
    connect: tuple[str, int] | None = None
    ca_file: Path | None = None
    insecure: bool = False


@dataclass
class Measurement:
    """Counts and timings of one target's run; times are in seconds."""

    label: str
    requested: int
    published: int = 0
    publish_seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    stopped_by: str = ""

    @property
    def events_per_second(self) -> float:
        return self.published / self.publish_seconds if self.publish_seconds > 0 else 0.0

    def latency_ms(self, fraction: float) -> float:
        """Return the nearest-rank percentile FRACTION (0.5 for p50) of the latencies in milliseconds."""
        if not self.latencies_s:
            return math.nan
        ordered = sorted(self.latencies_s)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000


class _Receiver(threading.Thread):
    """Reads a subscription on its own connection and stamps each event's arrival time."""

    def __init__(self, relay: RelayConnection, subscription_id: str, *, expected: int, idle_timeout_s: float):
        super().__init__(name="relay-chain-receiver", daemon=True)
        self.relay = relay
        self.subscription_id = subscription_id
        self.expected = expected
        self.idle_timeout_s = idle_timeout_s
        self.arrivals: dict[str, float] = {}
        self.error: ProbeError | None = None

    def run(self) -> None:
        while len(self.arrivals) < self.expected:
            try:
                event = self.relay.next_event(self.subscription_id, timeout_s=self.idle_timeout_s)
            except ProbeTimeoutError:
                return
            except ProbeError as exc:
                self.error = exc
                return
            self.arrivals.setdefault(event["id"], time.perf_counter())


def measure(target: Target, *, count: int, warmup: int, timeout_s: float, deadline: float) -> Measurement:
    """Publish WARMUP untimed events, then COUNT timed ones, to TARGET until DEADLINE (a perf_counter value)."""
    measurement = Measurement(label=target.label, requested=count)
    key = generate_key()

    with _open(target, timeout_s) as subscriber, _open(target, timeout_s) as publisher:
        subscriber.subscribe([{"authors": [public_key_hex(key)]}], subscription_id="chain")
        receiver = _Receiver(subscriber, "chain", expected=warmup + count, idle_timeout_s=timeout_s)
        receiver.start()

        _publish(publisher, key, f"{target.label} warmup", warmup, deadline=deadline, measurement=None)
        sent_at = _publish(publisher, key, target.label, count, deadline=deadline, measurement=measurement)
        receiver.join(timeout=timeout_s + 1)

    if receiver.error is not None:
        measurement.stopped_by = str(receiver.error)
    measurement.latencies_s = [
        receiver.arrivals[event_id] - sent for event_id, sent in sent_at.items() if event_id in receiver.arrivals
    ]
    return measurement


def _open(target: Target, timeout_s: float) -> RelayConnection:
    return open_relay(
        target.url, connect=target.connect, ca_file=target.ca_file, insecure=target.insecure, timeout_s=timeout_s
    )


def _publish(
    publisher: RelayConnection,
    key: coincurve.PrivateKey,
    label: str,
    count: int,
    *,
    deadline: float,
    measurement: Measurement | None,
) -> dict[str, float]:
    # Only send-to-OK time is counted, so the cost of signing does not lower the
    # events per second of either target.
    sent_at: dict[str, float] = {}
    publish_seconds = 0.0
    for index in range(count):
        if time.perf_counter() > deadline:
            if measurement is not None:
                measurement.stopped_by = "time budget used up"
            break
        event = sign_event(key, kind=1, content=f"relay_chain {label} {index}")

        sent = time.perf_counter()
        sent_at[event["id"]] = sent
        accepted, message = publisher.publish(event)
        publish_seconds += time.perf_counter() - sent
        if not accepted:
            raise RelayRejectedError(publisher.endpoint.address, event["id"], message)

    if measurement is not None:
        measurement.publish_seconds = publish_seconds
        measurement.published = len(sent_at)
    return sent_at


def render(measurements: list[Measurement]) -> str:
    """Render one line per target and, with two targets, the TLS/direct ratios."""
    lines = [f"{'target':<8} {'published':>11} {'received':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}"]
    for item in measurements:
        lines.append(
            f"{item.label:<8} {item.published:>5}/{item.requested:<5} {len(item.latencies_s):>9} "
            f"{item.events_per_second:>10.1f} {item.latency_ms(0.5):>8.2f} {item.latency_ms(0.99):>8.2f}"
        )
        if item.stopped_by:
            lines.append(f"         stopped early: {item.stopped_by}")

    by_label = {item.label: item for item in measurements}
    if "direct" in by_label and "tls" in by_label:
        direct, tls = by_label["direct"], by_label["tls"]
        lines.append(
            "ratio tls/direct: "
            f"events/s {_ratio(tls.events_per_second, direct.events_per_second)}, "
            f"p50 latency {_ratio(tls.latency_ms(0.5), direct.latency_ms(0.5))}, "
            f"p99 latency {_ratio(tls.latency_ms(0.99), direct.latency_ms(0.99))}"
        )
    return "\n".join(lines)


def _ratio(numerator: float, denominator: float) -> str:
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def _parse_connect(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid --connect {text!r}; expected HOST:PORT, e.g. 127.0.0.1:7443")
    return host.strip("[]"), int(port)


def _parse_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}; expected 1 to {MAX_COUNT}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direct", metavar="URL", help="Relay reached without TLS, e.g. ws://127.0.0.1:7777.")
    parser.add_argument("--tls", metavar="URL", help="The same relay behind TLS, e.g. wss://relay.test.")
    parser.add_argument("--connect", type=_parse_connect, metavar="HOST:PORT", help="Where to connect for --tls.")
    parser.add_argument("--ca-file", type=Path, help="CA or self-signed certificate that --tls is verified against.")
    parser.add_argument("--insecure", action="store_true", help="Do not verify the --tls certificate.")
    parser.add_argument("--count", type=_parse_count, default=500, help="Timed events per target (default 500).")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed events sent first (default 20).")
    parser.add_argument(
        "--timeout", type=float, default=10.0, dest="timeout_s", help="Seconds to wait for each OK or event (default 10)."
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="Time budget in seconds, split evenly between the targets; publishing stops when it runs out (default 300).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if not arguments.direct and not arguments.tls:
        build_parser().error("give --direct, --tls or both")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    targets = []
    if arguments.direct:
        targets.append(Target("direct", arguments.direct))
    if arguments.tls:
        targets.append(
            Target("tls", arguments.tls, arguments.connect, arguments.ca_file, arguments.insecure)
        )

    budget_s = arguments.max_seconds / len(targets)
    measurements = []
    for target in targets:
        deadline = time.perf_counter() + budget_s
        try:
            measurements.append(
                measure(
                    target,
                    count=arguments.count,
                    warmup=max(arguments.warmup, 0),
                    timeout_s=arguments.timeout_s,
                    deadline=deadline,
                )
            )
        except ProbeError as exc:
            print(f"{target.label} ({target.url}) failed: {exc}", file=sys.stderr)
            return 1

    print(f"{arguments.count} events per target, one at a time, each waiting for its OK")
    print(render(measurements))
    return 0


if __name__ == "__main__":
    sys.exit(main())
