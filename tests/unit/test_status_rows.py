"""status rows: health only for running containers, exit code for stopped ones."""

from __future__ import annotations

from unicity_infra.commands.status import collect_status
from unicity_infra.engine.docker import ContainerInfo


class ListingEngine:
    """Fake engine that lists fixed containers and has no supervisor to ask."""

    def __init__(self, containers: list[ContainerInfo]) -> None:
        self.containers = containers

    def list_containers(self, *, stack: str, service: str | None = None) -> list[ContainerInfo]:
        return self.containers

    def exec_output(self, container: str, command: list[str]) -> tuple[int, str]:
        return 1, ""


def _container(name: str, state: str, health: str | None, exit_code: int | None, *,
               service: str = "aggregator") -> ContainerInfo:
    return ContainerInfo(name=name, service=service, stack="s", image="img", state=state, health=health,
                         labels={}, exit_code=exit_code)


def test_exited_step_shows_exit_code_not_health() -> None:
    engine = ListingEngine([_container("genesis-prepare", "exited", "unhealthy", 0)])

    [row] = collect_status(engine, stack="s")

    assert row["state"] == "exited"
    assert row["health"] is None
    assert row["exit_code"] == 0


def test_running_container_keeps_health() -> None:
    engine = ListingEngine([_container("proxy", "running", "healthy", 0)])

    [row] = collect_status(engine, stack="s")

    assert row["health"] == "healthy"
    assert row["exit_code"] is None


def test_rows_grouped_by_service_in_start_order() -> None:
    engine = ListingEngine([
        _container("unicity-s-aggregator", "running", "healthy", None),
        _container("unicity-s-edge", "running", "healthy", None, service="edge"),
        _container("unicity-s-faucet", "running", "healthy", None, service="faucet"),
        _container("unicity-s-mongodb", "running", "healthy", None),
        _container("unicity-s-relay", "running", "healthy", None, service="relay"),
    ])

    rows = collect_status(engine, stack="s")

    assert [row["container"] for row in rows] == ["unicity-s-relay", "unicity-s-aggregator", "unicity-s-mongodb",
                                                  "unicity-s-faucet", "unicity-s-edge"]
