"""pytest plugin: the ``unicity_stack`` session fixture, with the vitest setup's semantics.

``E2E_LOCAL_AGGREGATOR=1`` starts relay, aggregator and faucet; ``E2E_LOCAL_INFRA=1``
starts relay and faucet (``E2E_LOCAL_INFRA_NO_FAUCET=1``: the relay only);
``E2E_LOCAL_INFRA_WIPE=1`` starts from empty volumes and removes them at the end.
Variables a parent process already exported are reused, and that stack is left
running. The stack name comes from ``UNICITY_INFRA_STACK`` (default ``e2e``) and
extra ``up`` arguments from ``E2E_UNICITY_INFRA_UP_ARGS``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

__all__ = ["UnicityStack", "unicity_stack", "wanted_services"]

_PARENT_VARIABLES = {"relay": "SPHERE_NOSTR_RELAYS", "faucet": "E2E_LOCAL_FAUCET_PUBKEY",
                     "aggregator": "SPHERE_AGGREGATOR_URL"}


@dataclass
class UnicityStack:
    """The running stack's endpoints and exported variables, as a test uses them."""

    stack: str
    started_here: bool
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def relay_url(self) -> str | None:
        return self.variables.get("SPHERE_NOSTR_RELAYS")

    @property
    def aggregator_url(self) -> str | None:
        return self.variables.get("SPHERE_AGGREGATOR_URL")

    @property
    def faucet_pubkey(self) -> str | None:
        return self.variables.get("E2E_LOCAL_FAUCET_PUBKEY")

    @property
    def trust_base_path(self) -> str | None:
        return self.variables.get("SPHERE_TRUST_BASE_PATH")

    @property
    def trust_base_url(self) -> str | None:
        return self.variables.get("SPHERE_TRUSTBASE_URL")

    @property
    def ca_bundle(self) -> str | None:
        return self.variables.get("NODE_EXTRA_CA_CERTS")


def wanted_services(env: dict[str, str]) -> list[str]:
    """Return the services the E2E_* switches in ENV ask for, in start order."""
    if env.get("E2E_LOCAL_AGGREGATOR") == "1":
        return ["relay", "aggregator", "faucet"]
    if env.get("E2E_LOCAL_INFRA") == "1":
        return ["relay"] if env.get("E2E_LOCAL_INFRA_NO_FAUCET") == "1" else ["relay", "faucet"]
    return []


def _cli(stack: str, *arguments: str) -> str:
    executable = shutil.which("unicity-infra")
    command = [executable] if executable else [sys.executable, "-m", "unicity_infra"]
    result = subprocess.run([*command, "--stack", stack, *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"unicity-infra {' '.join(arguments)} failed (exit {result.returncode}):\n"
                           f"{result.stderr.strip()}")
    return result.stdout


@pytest.fixture(scope="session")
def unicity_stack() -> Iterator[UnicityStack]:
    """Bring the stack up once per session (or reuse a parent's) and take it down at the end."""
    env = dict(os.environ)
    services = wanted_services(env)
    stack = env.get("UNICITY_INFRA_STACK", "e2e")
    if not services:
        pytest.skip("set E2E_LOCAL_INFRA=1 or E2E_LOCAL_AGGREGATOR=1 to start the Unicity stack")
    if all(env.get(_PARENT_VARIABLES[service]) for service in services):
        yield UnicityStack(stack=stack, started_here=False,
                           variables={key: value for key, value in env.items() if key in _PARENT_VARIABLES.values()})
        return

    wipe = env.get("E2E_LOCAL_INFRA_WIPE") == "1"
    # E2E_LOCAL_INFRA_WIPE=1 is the confirmation that an aggregator genesis may go; there is no terminal to ask on.
    down = ["down", "--wipe", "--yes"] if wipe else ["down"]
    try:
        if wipe:
            _cli(stack, *down)
        _cli(stack, "up", *services, "--json", *shlex.split(env.get("E2E_UNICITY_INFRA_UP_ARGS", "")))
        variables = json.loads(_cli(stack, "env", "--format", "json"))
    except RuntimeError:
        _cli_quietly(stack, *down)
        raise
    os.environ.update(variables)
    try:
        yield UnicityStack(stack=stack, started_here=True, variables=variables)
    finally:
        for key in variables:
            os.environ.pop(key, None)
        _cli(stack, *down)


def _cli_quietly(stack: str, *arguments: str) -> None:
    try:
        _cli(stack, *arguments)
    except RuntimeError:
        pass  # the original failure is what the user needs to see
