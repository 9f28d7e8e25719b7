"""Time 'unicity-infra up' in direct mode with warm images against the containers' own readiness.

The baseline is what the containers need themselves. A container's own readiness
is the time from its start to the moment Docker records it ready: for a
container with a healthcheck, the first "healthy" health_status event; for a
one-shot step (genesis, configuration upload), its exit with status 0; for a
container without a healthcheck, its start. These moments come from Docker
(container state and events), not from when 'up' noticed them, so time 'up'
loses to polling, Docker calls or probes stays outside the baseline.

The containers cannot all start at once: inside a service they wait for each
other as their plan's depends_on says (genesis before the BFT root, MongoDB and
the root before the aggregator), and 'up' starts the faucet only once the relay
and the aggregator stack are ready. The critical path is the longest chain of
own readiness times through those dependencies; with the default services it
is max(relay, aggregator chain) followed by the faucet. No orchestration can
finish sooner, so the script reports:

    total       wall time of 'up', process start to exit
    critical    the critical path of own readiness times (the floor)
    beyond      total - critical: time spent on Docker calls, waits noticed late,
                serial starts that could overlap, probes and 'up' itself
    beyond %    beyond / critical; the goal is at most 10 %
    docker start  the part of beyond that Docker needs to start containers. It is
                the critical path counted from each container's create event
                instead of its start, minus critical. On fuse-overlayfs one
                start takes a good part of a second.
    rest        total - critical - docker start: Python start-up, Docker calls
                other than starts, waits noticed late, probes, 'up' itself
    slowest     the slowest single container's own readiness (the issue's first
                wording; a floor only if everything could start at once)
    sum         the sum of all own readiness times (the floor of a strictly
                serial start, as earlier figures used)

The same containers are then started a second time without 'up'. The
script reads each one's create parameters back from 'docker inspect' and
removes the stack. It then replays the parameters through the Docker API in
its own process: each container is created and started as soon as its
dependencies are ready, and readiness comes from Docker's events. This direct
run has no CLI start-up, image checks, planning, probes or state files, so it
is the floor of any tool that starts these containers through Docker, start
calls included:

    direct      wall time of the direct run, first create to last ready
    ratio       total / direct
    over direct total - direct, as a share of direct. The goal of at most
                10 % overhead applies to this figure.

With --details it also lists each container: when Docker created it, started it
and recorded it ready, counted from the start of 'up'; its own readiness; and,
for our wrapper images, when the supervisor inside logged its service ready.
A healthcheck first runs one interval after the start (Docker 20.10 has no
start interval), so a wrapper whose service is ready in about 1 s is recorded
healthy only after the image's 2 s interval. Run on demand:

    python benchmarks/cold_start.py                 # stand-in upstream images from tests/fixtures
    python benchmarks/cold_start.py --services relay --runs 3 --details

Each run uses a new stack with empty volumes and free ports, and removes it
afterwards, and the runs keep their state files in a temporary directory. Other work on the host makes the figures noisy: compare several runs.
The dependencies are read from the label 'up' puts on each container
(org.unicity.infra.depends-on); the order between services is SERVICE_NEEDS below.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import docker

REPOSITORY = Path(__file__).resolve().parents[1]
# The CLI of this checkout, whatever 'unicity-infra' on PATH points at.
CLI = [sys.executable, "-c", "from unicity_infra.cli import main; main()"]
LABEL_STACK = "org.unicity.infra.stack"
LABEL_SERVICE = "org.unicity.infra.service"
LABEL_DEPENDS_ON = "org.unicity.infra.depends-on"
# 'up' starts the faucet once the relay and the aggregator stack are ready; the faucet is pointed at both.
SERVICE_NEEDS = {"relay": (), "aggregator": (), "faucet": ("relay", "aggregator")}
# The conditions of the depends-on label, as compose names them, and the Docker moment each waits for.
CONDITIONS = {"service_healthy": "healthy", "service_started": "started", "service_completed_successfully": "completed"}


@dataclass(frozen=True)
class Timing:
    """One container's moments in epoch seconds, as Docker recorded them, and what it waits for.

    CREATED is Docker's create event; 'up' starts a container right after
    creating it, so STARTED - CREATED is what Docker needs to start it.
    SERVICE_READY is when our wrapper's supervisor logged its service ready
    (None for other images); READY - SERVICE_READY is the wait for Docker's
    first healthcheck, which runs one interval after the start.
    """

    name: str
    service: str
    needs: tuple[str, ...]
    created: float
    started: float
    ready: float
    service_ready: float | None = None

    @property
    def own_s(self) -> float:
        return self.ready - self.started

    @property
    def docker_start_s(self) -> float:
        return self.started - self.created


def parse_docker_time(text: str) -> float:
    """Return the epoch seconds of Docker's RFC 3339 time, which carries nanoseconds Python cannot parse."""
    head, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(head + "+00:00")
    return moment.timestamp() + (float("0." + fraction[:9]) if fraction else 0.0)


class StackEvents(threading.Thread):
    """Record, from Docker's event stream, when each container of the stack was created and first turned healthy."""

    def __init__(self, client: docker.DockerClient, stack: str) -> None:
        super().__init__(daemon=True)
        self.created_at: dict[str, float] = {}
        self.healthy_at: dict[str, float] = {}
        self._stream = client.events(decode=True, filters={"type": "container", "label": f"{LABEL_STACK}={stack}"})

    def run(self) -> None:
        # The SDK's stream ends the loop quietly when close() cuts the connection.
        for event in self._stream:
            name = event.get("Actor", {}).get("Attributes", {}).get("name")
            moments = {"create": self.created_at, "health_status: healthy": self.healthy_at}.get(event.get("status"))
            if moments is not None and name not in moments:
                moments[name] = event["timeNano"] / 1e9

    def close(self) -> None:
        self._stream.close()
        self.join(timeout=5)


def collect_timings(client: docker.DockerClient, stack: str, events: StackEvents) -> list[Timing]:
    """Read each container's moments from Docker; raise RuntimeError for one never ready."""
    timings = []
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack}"}):
        state = container.attrs["State"]
        started = parse_docker_time(state["StartedAt"])
        if state["Status"] == "exited":  # a one-shot step, even on an image with a healthcheck
            ready = parse_docker_time(state["FinishedAt"]) if state["ExitCode"] == 0 else None
        elif state.get("Health"):
            ready = events.healthy_at.get(container.name)
        else:
            ready = started
        if ready is None:
            raise RuntimeError(f"container {container.name} never became ready (state {state['Status']})")
        labels = container.labels
        needs = tuple(item.split("=", 1)[0] for item in labels.get(LABEL_DEPENDS_ON, "").split(",") if item)
        timings.append(Timing(container.name, labels.get(LABEL_SERVICE, "?"), needs,
                              created=events.created_at.get(container.name, started), started=started, ready=ready,
                              service_ready=_service_ready(container)))
    return sorted(timings, key=lambda timing: timing.started)


def _service_ready(container: docker.models.containers.Container) -> float | None:
    """Return when our supervisor logged the service ready ("... is ready after N s"), or None."""
    for line in container.logs(timestamps=True, tail=400).decode("utf-8", "replace").splitlines():
        if "supervisor: " in line and " is ready after " in line:
            return parse_docker_time(line.split(" ", 1)[0])
    return None


def critical_path(timings: list[Timing], service_needs: dict[str, tuple[str, ...]], *,
                  weight: Callable[[Timing], float] = lambda timing: timing.own_s) -> tuple[float, list[str]]:
    """Return the longest chain of WEIGHTs (default: own readiness) through the dependencies, and its containers.

    Inside a service a container follows the containers it depends on; a
    service's first containers follow the end of every service it needs.
    """
    by_name = {timing.name: timing for timing in timings}
    services = {timing.service for timing in timings}
    finish: dict[str, tuple[float, list[str]]] = {}

    def container_end(name: str) -> tuple[float, list[str]]:
        if name not in finish:
            timing = by_name[name]
            before = [container_end(need) for need in timing.needs if need in by_name]
            before += [service_end(service) for service in service_needs.get(timing.service, ()) if service in services]
            length, chain = max(before, default=(0.0, []))
            finish[name] = (length + weight(timing), [*chain, name])
        return finish[name]

    def service_end(service: str) -> tuple[float, list[str]]:
        return max(container_end(timing.name) for timing in timings if timing.service == service)

    return max((service_end(service) for service in services), default=(0.0, []))


@dataclass(frozen=True)
class Replay:
    """The parameters the direct run needs to create one container again as 'up' created it."""

    name: str
    service: str
    needs: tuple[tuple[str, str], ...]  # (container, condition: healthy, started or completed)
    ready_on: str  # the condition this container itself is awaited on
    create_args: dict[str, object]
    other_networks: tuple[tuple[str, tuple[str, ...]], ...]


def capture_replays(client: docker.DockerClient, stack: str) -> tuple[list[Replay], list[dict], list[dict]]:
    """Read STACK's containers, networks and volumes back from Docker, in creation order."""
    replays = []
    containers = client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack}"})
    for container in sorted(containers, key=lambda item: item.attrs["Created"]):
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        networks = container.attrs["NetworkSettings"]["Networks"]
        short_id = container.id[:12]
        aliases = {network: tuple(alias for alias in (settings.get("Aliases") or []) if alias != short_id)
                   for network, settings in networks.items()}
        primary = host["NetworkMode"]
        labels = config.get("Labels") or {}
        needs = tuple((name, CONDITIONS[condition]) for name, condition in
                      (item.split("=", 1) for item in labels.get(LABEL_DEPENDS_ON, "").split(",") if item))
        ready_on = ("completed" if container.attrs["State"]["Status"] == "exited"
                    else "healthy" if config.get("Healthcheck") else "started")
        create_args = {
            "image": config["Image"], "name": container.name, "command": config.get("Cmd"),
            "entrypoint": config.get("Entrypoint"), "environment": config.get("Env"), "labels": labels,
            "user": config.get("User") or None, "working_dir": config.get("WorkingDir") or None,
            "healthcheck": config.get("Healthcheck"), "detach": True,
            "ports": [tuple(port.split("/")) for port in config.get("ExposedPorts") or {}] or None,
            "host_config": host,
            "networking_config": client.api.create_networking_config(
                {primary: client.api.create_endpoint_config(aliases=list(aliases.get(primary, ())) or None)}),
        }
        replays.append(Replay(container.name, labels.get(LABEL_SERVICE, "?"), needs, ready_on, create_args,
                              tuple((network, aliases[network]) for network in networks if network != primary)))
    stack_filter = {"label": f"{LABEL_STACK}={stack}"}
    networks = [network.attrs for network in client.networks.list(filters=stack_filter)]
    volumes = [volume.attrs for volume in client.volumes.list(filters=stack_filter)]
    return replays, networks, volumes


class ReadyEvents(threading.Thread):
    """Follow Docker's events for a stack and set, per container, an event for each condition it meets."""

    def __init__(self, client: docker.DockerClient, stack: str, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.met = {name: {condition: threading.Event() for condition in ("started", "healthy", "completed")}
                    for name in names}
        self.failed: dict[str, str] = {}
        self._stream = client.events(decode=True, filters={"type": "container", "label": f"{LABEL_STACK}={stack}"})

    def run(self) -> None:
        for event in self._stream:
            attributes = event.get("Actor", {}).get("Attributes", {})
            conditions = self.met.get(attributes.get("name"))
            if conditions is None:
                continue
            status = event.get("status")
            if status == "start":
                conditions["started"].set()
            elif status == "health_status: healthy":
                conditions["healthy"].set()
            elif status == "die":
                if attributes.get("exitCode") == "0":
                    conditions["completed"].set()
                else:
                    self.failed[attributes["name"]] = f"exited with status {attributes.get('exitCode')}"
                    for condition in conditions.values():
                        condition.set()  # wake the waiters, which then read FAILED

    def close(self) -> None:
        self._stream.close()
        self.join(timeout=5)


def run_direct(client: docker.DockerClient, stack: str, replays: list[Replay], networks: list[dict],
               volumes: list[dict], *, timeout_s: float = 300.0) -> float:
    """Create and start REPLAYS through the Docker API as early as their dependencies allow, and return the seconds."""
    events = ReadyEvents(client, stack, [replay.name for replay in replays])
    events.start()
    by_service: dict[str, list[Replay]] = {}
    for replay in replays:
        by_service.setdefault(replay.service, []).append(replay)
    errors: list[str] = []

    def wait(name: str, condition: str) -> None:
        if not events.met[name][condition].wait(timeout_s):
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {name} to be {condition}")
        if name in events.failed:
            raise RuntimeError(f"{name} failed: {events.failed[name]}")

    def bring_up(replay: Replay) -> None:
        try:
            for name, condition in replay.needs:
                wait(name, condition)
            for service in SERVICE_NEEDS.get(replay.service, ()):
                for needed in by_service.get(service, []):
                    wait(needed.name, needed.ready_on)
            created = client.api.create_container(**replay.create_args)
            for network, aliases in replay.other_networks:
                client.api.connect_container_to_network(created["Id"], network, aliases=list(aliases) or None)
            client.api.start(created["Id"])
            wait(replay.name, replay.ready_on)
        except Exception as exc:  # noqa: BLE001 - reported for the run; the other threads must stop waiting
            errors.append(f"{replay.name}: {exc}")
            for conditions in events.met.values():
                for condition in conditions.values():
                    condition.set()  # so the other threads stop waiting
            events.failed.setdefault(replay.name, str(exc))

    started = time.monotonic()
    try:
        for network in networks:
            client.networks.create(network["Name"], driver=network["Driver"], labels=network.get("Labels"))
        for volume in volumes:
            client.volumes.create(volume["Name"], labels=volume.get("Labels"))
        threads = [threading.Thread(target=bring_up, args=(replay,), daemon=True) for replay in replays]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        events.close()
    if errors:
        raise RuntimeError("the direct run failed: " + "; ".join(errors))
    return elapsed


def remove_stack(client: docker.DockerClient, stack: str) -> None:
    """Remove STACK's containers (with their anonymous volumes), volumes and networks, and keep its host files."""
    stack_filter = {"label": f"{LABEL_STACK}={stack}"}
    for container in client.containers.list(all=True, filters=stack_filter):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=stack_filter):
        volume.remove(force=True)
    for network in client.networks.list(filters=stack_filter):
        network.remove()


def _standin_environment() -> dict[str, str]:
    sys.path[:0] = [str(REPOSITORY / "src"), str(REPOSITORY)]
    from tests.fixtures.faucet_standin import build_faucet_standin
    from tests.fixtures.standins import build_aggregator_standins
    from unicity_infra.engine.images import FAUCET_IMAGE_ENV, build_images

    images = build_aggregator_standins()
    os.environ[FAUCET_IMAGE_ENV] = build_faucet_standin()
    build_images(["relay", "aggregator", "faucet"], offline=True)
    overrides = " ".join(f"{key}={images[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl"))
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "UNICITY_INFRA_IMAGE_OVERRIDES": overrides, "PYTHONPATH": python_path}


def measure(client: docker.DockerClient, services: list[str], env: dict[str, str]) -> tuple[dict[str, float], list[Timing], list[str], float]:
    """Run 'up' once on a new stack; return its figures, the timings, the critical chain and when 'up' began."""
    stack = f"bench-{uuid.uuid4().hex[:8]}"
    relay_port, aggregator_port, faucet_port = _free_ports(3)
    command = [*CLI, "--stack", stack, "up", *services, "--json",
               "--relay-port", relay_port, "--aggregator-port", aggregator_port, "--faucet-port", faucet_port]
    events = StackEvents(client, stack)
    events.start()
    try:
        began = time.time()
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        total = time.monotonic() - started
        time.sleep(0.2)  # let the last events arrive
        events.close()
        if result.returncode != 0:
            raise RuntimeError(f"'up' exited with status {result.returncode}:\n{result.stderr[-2000:]}")
        timings = collect_timings(client, stack, events)
        replays, networks, volumes = capture_replays(client, stack)
        remove_stack(client, stack)
        direct = run_direct(client, stack, replays, networks, volumes)
    finally:
        subprocess.run([*CLI, "--stack", stack, "down", "--wipe", "--wipe-certificates", "--yes"],
                       capture_output=True, env=env, check=False)
    critical, chain = critical_path(timings, SERVICE_NEEDS)
    with_starts, _ = critical_path(timings, SERVICE_NEEDS, weight=lambda timing: timing.docker_start_s + timing.own_s)
    figures = {
        "total_s": total,
        "direct_s": direct,
        "ratio": total / direct,
        "over_direct_pct": 100 * (total - direct) / direct,
        "critical_s": critical,
        "beyond_s": total - critical,
        "beyond_pct": 100 * (total - critical) / critical,
        "docker_start_s": with_starts - critical,
        "rest_s": total - with_starts,
        "slowest_s": max(timing.own_s for timing in timings),
        "sum_s": sum(timing.own_s for timing in timings),
    }
    return figures, timings, chain, began


def _print_details(timings: list[Timing], chain: list[str], began: float) -> None:
    print(f"    {'container':<40} {'created s':>9} {'start s':>8} {'ready s':>8} {'own s':>6} {'service s':>9}")
    for timing in timings:
        mark = " *" if timing.name in chain else ""
        service = f"{timing.service_ready - timing.started:9.2f}" if timing.service_ready else f"{'-':>9}"
        print(f"    {timing.name:<40} {timing.created - began:9.2f} {timing.started - began:8.2f} "
              f"{timing.ready - began:8.2f} {timing.own_s:6.2f} {service}{mark}")
    print("    (s counted from the start of 'up'; own = ready - start; service = our supervisor's own 'ready' log line"
          " after the start; * on the critical path)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", nargs="*", default=["relay", "aggregator", "faucet"])
    parser.add_argument("--runs", type=int, default=2, help="runs to make, each on a new stack (1-10)")
    parser.add_argument("--details", action="store_true", help="list each container's start and ready moments")
    options = parser.parse_args()
    if not 1 <= options.runs <= 10:
        parser.error(f"--runs must be from 1 to 10, got {options.runs}")

    # The runs' endpoint records and trust-base copies go to a directory removed afterwards.
    state = tempfile.TemporaryDirectory(prefix="cold-start-state-")
    env = {**_standin_environment(), "XDG_STATE_HOME": state.name}
    client = docker.from_env(version="auto")
    columns = [("total s", "total_s", ".1f"), ("direct s", "direct_s", ".1f"), ("ratio", "ratio", ".2f"),
               ("over direct %", "over_direct_pct", ".0f"), ("critical s", "critical_s", ".1f"),
               ("beyond %", "beyond_pct", ".0f"), ("docker start s", "docker_start_s", ".1f"),
               ("rest s", "rest_s", ".1f"), ("slowest s", "slowest_s", ".1f"), ("sum s", "sum_s", ".1f")]
    print("run " + " ".join(f"{title:>{len(title)}}" for title, _, _ in columns))
    runs = []
    for run in range(1, options.runs + 1):
        try:
            figures, timings, chain, began = measure(client, options.services, env)
        except RuntimeError as exc:
            print(f"run {run} failed: {exc}", file=sys.stderr)
            return 1
        runs.append(figures)
        print(f"{run:>3} " + " ".join(f"{figures[key]:>{len(title)}{form}}" for title, key, form in columns))
        if options.details:
            _print_details(timings, chain, began)
    if len(runs) > 1:
        keys = ("total_s", "direct_s", "over_direct_pct", "critical_s", "beyond_pct")
        print("spread: " + ", ".join(f"{key} {min(run[key] for run in runs):.1f}-{max(run[key] for run in runs):.1f}"
                                     for key in keys))
        print("median: " + ", ".join(f"{key} {statistics.median(run[key] for run in runs):.1f}" for key in keys))
    print("critical path of the last run: " + " -> ".join(chain))
    print(json.dumps({"services": options.services, "runs": [{key: round(value, 2) for key, value in figures.items()}
                                                            for figures in runs]}))
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
