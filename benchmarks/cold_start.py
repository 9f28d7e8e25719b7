"""Time 'unicity-infra up' in direct mode with warm images, against the containers' own readiness.

Each container's own readiness is measured by polling Docker every 0.1 s while
'up' runs: from the container's start to the first time Docker reports it
healthy (one-shot steps: to their exit). Docker keeps only the last five health
results, so they cannot be read back afterwards. The script prints the
total wall time of 'up', the slowest container's own readiness, the sum along
the start order (containers start one after another), and the time 'up' spends
beyond that sum: waiting, polling, probing and Docker calls. Run on demand:

    python benchmarks/cold_start.py                 # stand-in upstream images from tests/fixtures
    python benchmarks/cold_start.py --services relay

Each run uses a new stack with empty volumes and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import docker

REPOSITORY = Path(__file__).resolve().parents[1]


def _parse_time(text: str) -> float:
    # Docker prints RFC 3339 with nanoseconds; Python's parser takes at most microseconds.
    head, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(head + "+00:00")
    return moment.timestamp() + (float("0." + fraction[:9]) if fraction else 0.0)


class ReadinessWatcher(threading.Thread):
    """Poll the stack's containers and record when each became healthy or exited 0."""

    def __init__(self, client: docker.DockerClient, stack: str) -> None:
        super().__init__(daemon=True)
        self.client, self.stack = client, stack
        self.ready_s: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            for container in self.client.containers.list(all=True, filters={"label": f"org.unicity.infra.stack={self.stack}"}):
                if container.name in self.ready_s:
                    continue
                state = container.attrs["State"]
                health = (state.get("Health") or {}).get("Status")
                done = health == "healthy" or (health is None and state["Status"] == "exited" and state["ExitCode"] == 0)
                if done and state.get("StartedAt", "").startswith("2"):
                    self.ready_s[container.name] = time.time() - _parse_time(state["StartedAt"])


def _standin_environment() -> dict[str, str]:
    sys.path.insert(0, str(REPOSITORY))
    from tests.fixtures.faucet_standin import build_faucet_standin
    from tests.fixtures.standins import build_aggregator_standins
    from unicity_infra.engine.images import FAUCET_IMAGE_ENV, build_images

    images = build_aggregator_standins()
    os.environ[FAUCET_IMAGE_ENV] = build_faucet_standin()
    build_images(["relay", "aggregator", "faucet"], offline=True)
    overrides = " ".join(f"{key}={images[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl"))
    return {**os.environ, "UNICITY_INFRA_IMAGE_OVERRIDES": overrides}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", nargs="*", default=["relay", "aggregator", "faucet"])
    parser.add_argument("--runs", type=int, default=2, help="runs to make, each on a new stack (1-5)")
    options = parser.parse_args()
    if not 1 <= options.runs <= 5:
        parser.error("--runs must be from 1 to 5")

    env = _standin_environment()
    client = docker.from_env(version="auto")
    print(f"{'run':>3} {'total s':>8} {'slowest s':>10} {'sum s':>7} {'beyond s':>9} {'beyond %':>9}")
    for run in range(1, options.runs + 1):
        stack = f"bench-{uuid.uuid4().hex[:8]}"
        relay_port, aggregator_port, faucet_port = _free_ports(3)
        command = ["unicity-infra", "--stack", stack, "up", *options.services, "--json",
                   "--relay-port", relay_port, "--aggregator-port", aggregator_port, "--faucet-port", faucet_port]
        watcher = ReadinessWatcher(client, stack)
        watcher.start()
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        total = time.monotonic() - started
        watcher.stopping.set()
        watcher.join()
        try:
            if result.returncode != 0:
                print(result.stderr[-2000:], file=sys.stderr)
                return 1
            measured = list(watcher.ready_s.values())
            slowest, summed = max(measured), sum(measured)
            beyond = total - summed
            print(f"{run:>3} {total:8.1f} {slowest:10.1f} {summed:7.1f} {beyond:9.1f} {100 * beyond / summed:8.0f}%")
        finally:
            subprocess.run(["unicity-infra", "--stack", stack, "down", "--wipe", "--wipe-certificates", "--yes"],
                           capture_output=True, env=env, check=False)
    print(json.dumps({"services": options.services}))
    return 0


def _free_ports(count: int) -> list[str]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe_socket in sockets:
            probe_socket.bind(("127.0.0.1", 0))
        return [str(probe_socket.getsockname()[1]) for probe_socket in sockets]
    finally:
        for probe_socket in sockets:
            probe_socket.close()


if __name__ == "__main__":
    sys.exit(main())
