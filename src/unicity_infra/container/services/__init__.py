"""Per-image service plans; ``load_plan`` picks one by the name given to the entrypoint.

A new image adds a module with ``build_plan(config, environ) -> ServicePlan``
and one line in ``PLAN_BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from unicity_infra.container.config import SupervisorConfig, check_port_conflicts
from unicity_infra.container.errors import ConfigError
from unicity_infra.container.services import aggregator_proxy, faucet, relay
from unicity_infra.container.services.plan import ConfigFile, ServicePlan

__all__ = ["PLAN_BUILDERS", "ConfigFile", "ServicePlan", "load_plan"]

PLAN_BUILDERS: dict[str, Callable[[SupervisorConfig, Mapping[str, str]], ServicePlan]] = {
    "relay": relay.build_plan,
    "aggregator-proxy": aggregator_proxy.build_plan,
    "faucet": faucet.build_plan,
}


def load_plan(name: str, config: SupervisorConfig, environ: Mapping[str, str]) -> ServicePlan:
    """Build the plan of service NAME; raises ConfigError for an unknown name or port clash."""
    builder = PLAN_BUILDERS.get(name)
    if builder is None:
        raise ConfigError("service", name, f"expected one of: {', '.join(sorted(PLAN_BUILDERS))}")

    plan = builder(config, environ)
    check_port_conflicts(config, upstream_port=plan.upstream_port)
    return plan
