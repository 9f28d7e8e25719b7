"""probe_relay input guards, which act before any connection is opened."""

from __future__ import annotations

import pytest

from unicity_infra.errors import SettingsError
from unicity_infra.probes.relay import probe_relay


@pytest.mark.parametrize("url", ["https://relay.test", "http://relay.test", "relay.test", "ftp://relay.test", "wss://"])
def test_probe_relay_rejects_non_websocket_url(url: str) -> None:
    with pytest.raises(SettingsError, match="relay URL") as raised:
        probe_relay(url)

    assert raised.value.value == url
