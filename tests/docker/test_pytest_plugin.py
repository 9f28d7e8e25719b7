"""The unicity_stack fixture, run in a separate pytest process against the real CLI."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.fixtures.pebble import free_port
from tests.fixtures.standins import build_aggregator_standins

pytestmark = pytest.mark.docker

pytest_plugins = ["pytester"]

SUITE = '''
import urllib.request

def test_relay_answers(unicity_stack):
    assert unicity_stack.started_here
    request = urllib.request.Request(unicity_stack.relay_url.replace("ws", "http", 1),
                                     headers={"Accept": "application/nostr+json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert b"supported_nips" in response.read()

def test_variables_exported(unicity_stack):
    import os
    assert os.environ["SPHERE_NOSTR_RELAYS"] == unicity_stack.relay_url
'''



def _run_suite(pytester: pytest.Pytester, stack: str) -> tuple[pytest.RunResult, list[object], list[str]]:
    """Run the suite in a pytest process and return its result and STACK's containers and genesis volumes afterwards.

    The stack is removed at the end, certificates too, which the fixture's wipe keeps as 'down --wipe' does.
    """
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        status = subprocess.run(["unicity-infra", "--stack", stack, "status", "--json"],
                                capture_output=True, text=True, check=True)
        volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"label=org.unicity.infra.stack={stack}",
                                  "--filter", "label=org.unicity.infra.role=genesis"],
                                 capture_output=True, text=True, check=True)
    finally:
        subprocess.run(["unicity-infra", "--stack", stack, "down", "--wipe", "--wipe-certificates", "--yes"],
                       capture_output=True, check=False)
    return result, json.loads(status.stdout)["containers"], volumes.stdout.split()


def test_unicity_stack_fixture_boots_and_tears_down(
    relay_image: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = f"plugin-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("UNICITY_INFRA_STACK", stack)
    monkeypatch.setenv("E2E_LOCAL_INFRA", "1")
    monkeypatch.setenv("E2E_LOCAL_INFRA_NO_FAUCET", "1")
    monkeypatch.setenv("E2E_LOCAL_INFRA_WIPE", "1")
    monkeypatch.setenv("E2E_UNICITY_INFRA_UP_ARGS", f"--relay-port {free_port()}")
    for key in ("SPHERE_NOSTR_RELAYS", "E2E_LOCAL_FAUCET_PUBKEY", "SPHERE_AGGREGATOR_URL"):
        monkeypatch.delenv(key, raising=False)
    pytester.makepyfile(test_stack=SUITE)

    result, containers, _ = _run_suite(pytester, stack)

    result.assert_outcomes(passed=2)
    assert containers == []


WHOLE_STACK_SUITE = '''
import os

def test_whole_stack_variables(unicity_stack):
    assert unicity_stack.started_here
    assert os.environ["SPHERE_AGGREGATOR_URL"].startswith("http://127.0.0.1:")
    assert os.environ["E2E_LOCAL_FAUCET_PUBKEY"]
'''


def test_unicity_stack_fixture_wipes_whole_stack(
    relay_image: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = f"plugin-{uuid.uuid4().hex[:8]}"
    images = build_aggregator_standins()
    monkeypatch.setenv("UNICITY_INFRA_IMAGE_OVERRIDES",
                       " ".join(f"{key}={images[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl")))
    monkeypatch.setenv("UNICITY_INFRA_STACK", stack)
    monkeypatch.setenv("E2E_LOCAL_AGGREGATOR", "1")
    monkeypatch.setenv("E2E_LOCAL_INFRA_WIPE", "1")
    monkeypatch.setenv("E2E_UNICITY_INFRA_UP_ARGS", f"--relay-port {free_port()} --aggregator-port {free_port()} "
                                                    f"--faucet-port {free_port()}")
    for key in ("E2E_LOCAL_INFRA", "E2E_LOCAL_INFRA_NO_FAUCET", "SPHERE_NOSTR_RELAYS", "E2E_LOCAL_FAUCET_PUBKEY",
                "SPHERE_AGGREGATOR_URL"):
        monkeypatch.delenv(key, raising=False)
    pytester.makepyfile(test_stack=WHOLE_STACK_SUITE)

    result, containers, genesis_volumes = _run_suite(pytester, stack)

    result.assert_outcomes(passed=1)
    # Teardown removed the genesis without a terminal to confirm on: E2E_LOCAL_INFRA_WIPE=1 is the confirmation.
    assert containers == []
    assert genesis_volumes == []


def test_unicity_stack_fixture_skips_without_switch(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("E2E_LOCAL_INFRA", "E2E_LOCAL_AGGREGATOR"):
        monkeypatch.delenv(key, raising=False)
    pytester.makepyfile(test_stack="def test_needs_stack(unicity_stack):\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(skipped=1)
