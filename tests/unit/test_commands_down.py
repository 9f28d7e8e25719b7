"""Which volume roles ``down`` removes (commands/down.py); the removal itself is tested on Docker."""

from __future__ import annotations

import pytest

from unicity_infra.commands.down import wipe_roles


@pytest.mark.parametrize(
    ("wipe", "wipe_certificates", "roles"),
    [
        (False, False, ()),
        (True, False, ("data", "genesis")),
        (False, True, ("certificates",)),
        (True, True, ("data", "genesis", "certificates")),
    ],
)
def test_wipe_roles(wipe: bool, wipe_certificates: bool, roles: tuple[str, ...]) -> None:
    assert wipe_roles(wipe=wipe, wipe_certificates=wipe_certificates) == roles


def test_wipe_roles_genesis_only_with_data() -> None:
    for wipe in (False, True):
        roles = wipe_roles(wipe=wipe, wipe_certificates=True)

        assert ("genesis" in roles) == ("data" in roles)
