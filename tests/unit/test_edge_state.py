"""Unit tests of the edge's registration rules and state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra.edge.errors import ConflictError, InvalidFieldError, NotFoundError, StateFileError
from unicity_infra.edge.haproxy_config import Backend, ExtraPort
from unicity_infra.edge.state import load_state, plan_registration, plan_removal, save_state

RELAY = Backend("relay.test", "relay-1", 80, None)
PORT = ExtraPort(50001, 50001, "tcp")


def test_plan_registration_new_domain() -> None:
    planned, created = plan_registration({}, RELAY)

    assert planned == {"relay.test": RELAY}
    assert created is True


def test_plan_registration_same_container_updates() -> None:
    with_tls = Backend("relay.test", "relay-1", 80, 443)

    planned, created = plan_registration({"relay.test": RELAY}, with_tls)

    assert planned["relay.test"] == with_tls
    assert created is False


def test_plan_registration_other_container_conflicts() -> None:
    intruder = Backend("relay.test", "relay-2", 80, None)

    with pytest.raises(ConflictError) as caught:
        plan_registration({"relay.test": RELAY}, intruder)

    assert caught.value.owner == "relay-1"
    assert "relay-2" in str(caught.value)


@pytest.mark.parametrize("listen", [80, 443, 8404, 18080])
def test_plan_registration_reserved_listen_port(listen: int) -> None:
    backend = Backend("a.test", "a", 80, None, (ExtraPort(listen, 1, "tcp"),))

    with pytest.raises(InvalidFieldError) as caught:
        plan_registration({}, backend, reserved_ports={80, 443, 8404, 18080})

    assert caught.value.field == "extra_ports[0].listen"


def test_plan_registration_listen_taken_by_other_domain() -> None:
    owner = Backend("a.test", "a", 80, None, (PORT,))
    claimant = Backend("b.test", "b", 80, None, (ExtraPort(50002, 1, "http"), PORT))

    with pytest.raises(InvalidFieldError) as caught:
        plan_registration({"a.test": owner}, claimant)

    assert caught.value.field == "extra_ports[1].listen"
    assert "'a.test'" in str(caught.value)


def test_plan_registration_alias_shares_listen() -> None:
    primary = Backend("relay.test", "relay-1", 80, None, (PORT,))
    alias = Backend("nostr.test", "relay-1", 80, None, (PORT,))

    planned, created = plan_registration({"relay.test": primary}, alias)

    assert set(planned) == {"relay.test", "nostr.test"}
    assert created is True


def test_plan_registration_same_container_other_target_conflicts() -> None:
    primary = Backend("relay.test", "relay-1", 80, None, (PORT,))
    alias = Backend("nostr.test", "relay-1", 80, None, (ExtraPort(50001, 50009, "tcp"),))

    with pytest.raises(InvalidFieldError):
        plan_registration({"relay.test": primary}, alias)


def test_plan_registration_update_keeps_own_listen() -> None:
    primary = Backend("relay.test", "relay-1", 80, None, (PORT,))
    updated = Backend("relay.test", "relay-1", 80, 443, (PORT,))

    planned, _created = plan_registration({"relay.test": primary}, updated)

    assert planned["relay.test"] == updated


def test_plan_removal_removes_domain() -> None:
    planned, removed = plan_removal({"relay.test": RELAY}, "relay.test")

    assert planned == {}
    assert removed == RELAY


def test_plan_removal_absent_domain() -> None:
    with pytest.raises(NotFoundError):
        plan_removal({}, "relay.test")


def test_save_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "backends.json"
    backends = {"relay.test": RELAY, "x.test": Backend("x.test", "x", 81, 444, (PORT,))}

    save_state(path, backends)

    assert load_state(path) == backends
    assert [entry.name for entry in path.parent.iterdir()] == ["backends.json"]


def test_load_state_missing_file(tmp_path: Path) -> None:
    assert load_state(tmp_path / "absent.json") == {}


def test_load_state_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "backends.json"
    path.write_text('{"version": 1, "backends": [{"domain": "a_b", "container": "c"}]}')

    with pytest.raises(StateFileError) as caught:
        load_state(path)

    assert str(path) in str(caught.value)
    assert "backends[0].domain" in str(caught.value)
