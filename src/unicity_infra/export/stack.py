"""Plan the exported services the way ``up`` plans them, without a Docker Engine.

The specs come from the same functions ``up`` and ``run`` call, so an export
cannot describe a different stack from the one ``up`` starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from unicity_infra.commands.edge import ROOTS_IN_CONTAINER
from unicity_infra.commands.faucet import resolve_faucet_defaults
from unicity_infra.commands.run import plan_for
from unicity_infra.commands.up import (
    EdgeLink,
    UpSettings,
    service_settings,
    order_services,
)
from unicity_infra.engine.docker import ContainerInfo
from unicity_infra.errors import SettingsError
from unicity_infra.settings import wrapper_image
from unicity_infra.stack.edge import EDGE_STATE_DIR, EdgeSettings, edge_plan
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.spec import (
    LABEL_SERVICE,
    LABEL_STACK,
    ContainerSpec,
    VolumeMount,
)

__all__ = ["EDGE", "SERVICE_NEEDS", "ExportedStack", "from_registry", "plan_export"]

logger = logging.getLogger(__name__)

EDGE = "edge"
EDGE_STATE_MOUNT = "/run/unicity-edge"
# Services whose settings ``up`` completes from others of the stack: the faucet
# takes its relay and its aggregator (and that one's trust base) from them.
SERVICE_NEEDS: dict[str, tuple[str, ...]] = {"faucet": ("relay", "aggregator")}


@dataclass(frozen=True)
class ExportedStack:
    """The plans of the exported services, in the order ``up`` starts them."""

    stack: str
    mode: str
    plans: dict[str, StackPlan]

    def front(self, service: str) -> ContainerSpec:
        """Return the container of SERVICE that clients reach (the last one started)."""
        return self.plans[service].containers[-1]

    def needs(self, service: str) -> tuple[str, ...]:
        """Return the exported services SERVICE must wait for."""
        needed = [other for other in SERVICE_NEEDS.get(service, ()) if other in self.plans]
        front = self.front(service) if service != EDGE else None
        if EDGE in self.plans and front is not None and "HAPROXY_HOST" in front.env:
            needed.insert(0, EDGE)
        return tuple(needed)


def plan_export(settings: UpSettings, *, stack: str, edge_registration: bool = True) -> ExportedStack:
    """Return the plans ``up`` would apply for SETTINGS in STACK.

    In local-edge mode the local edge comes first, as ``up`` starts it.
    Without EDGE_REGISTRATION the services do not register with an HAProxy
    edge (a Kubernetes cluster routes to them instead). Raises SettingsError
    for an unknown service or mode.
    """
    from unicity_infra.commands.up import MODES

    if settings.mode not in MODES:
        raise SettingsError("--mode", settings.mode, f"expected one of: {', '.join(MODES)}")
    services = order_services(settings.services)

    plans: dict[str, StackPlan] = {}
    edge: EdgeLink | None = None
    if settings.mode == "local-edge":
        edge_settings = EdgeSettings()
        plans[EDGE] = edge_plan(edge_settings, stack=stack)
        edge = EdgeLink(network=edge_settings.network, alias=edge_settings.alias)
    for service in services:
        run_settings = service_settings(settings, service, stack=stack, edge=edge)
        if not edge_registration:
            run_settings = replace(run_settings, haproxy_host=None, haproxy_api_key_file=None)
        if service == "faucet":
            run_settings, notes = resolve_faucet_defaults(_PlannedEngine(plans), run_settings, stack=stack)
            logger.debug("faucet defaults from the exported stack notes=%s", notes)
        plans[service] = plan_for(run_settings, stack)
        if service == "faucet" and EDGE in plans:
            plan = plans[service]
            plan.containers[-1] = _trust_local_edge(plan.containers[-1], plans[EDGE])
    return ExportedStack(stack=stack, mode=settings.mode, plans=plans)


def _trust_local_edge(spec: ContainerSpec, edge: StackPlan) -> ContainerSpec:
    """Return the faucet's SPEC reading the local edge's CA roots from the edge's state volume.

    ``run`` copies the roots out of the running edge into a host file. A file
    that starts everything at once cannot do that, so the faucet mounts the
    edge's state volume read-only and Node.js reads the roots from there.
    """
    state = next(mount for mount in edge.containers[-1].volumes if mount.target == EDGE_STATE_DIR)
    roots = EDGE_STATE_MOUNT + ROOTS_IN_CONTAINER.removeprefix(EDGE_STATE_DIR)
    # NOTE: the edge writes the roots file while it starts; that it exists once the
    # edge reports healthy is assumed, not tested.
    return replace(spec, volumes=(*spec.volumes, VolumeMount(state.volume, EDGE_STATE_MOUNT, read_only=True)),
                   env={"NODE_EXTRA_CA_CERTS": roots, **spec.env})


def from_registry(exported: ExportedStack, registry: str) -> ExportedStack:
    """Return EXPORTED with our wrapper images taken from REGISTRY, named as ``images push`` names them.

    For example ``unicity-infra/relay:0.1.0`` becomes ``ghcr.io/ORG/unicity-infra/relay:0.1.0``;
    upstream images keep their pinned references.
    """
    ours = wrapper_image("relay").split("/", 1)[0] + "/"
    plans = {
        service: replace(plan, containers=[
            replace(spec, image=f"{registry}/{spec.image}") if spec.image.startswith(ours) else spec
            for spec in plan.containers
        ])
        for service, plan in exported.plans.items()
    }
    return replace(exported, plans=plans)


class _PlannedEngine:
    """Docker Engine stand-in that shows ``resolve_faucet_defaults`` the planned containers.

    Every planned container counts as running (one-shot steps as completed),
    because the exported file starts them before the faucet.
    """

    def __init__(self, plans: dict[str, StackPlan]) -> None:
        self._containers = [spec for plan in plans.values() for spec in plan.containers]
        self.api = self

    def list_containers(self, *, stack: str | None = None, service: str | None = None) -> list[ContainerInfo]:
        return [
            ContainerInfo(
                name=spec.name,
                service=spec.labels.get(LABEL_SERVICE, spec.service),
                stack=spec.labels.get(LABEL_STACK, ""),
                image=spec.image,
                state="exited" if spec.restart_policy == "no" else "running",
                health=None,
                labels=dict(spec.labels),
                exit_code=0,
            )
            for spec in self._containers
            if (service is None or spec.service == service)
            and (stack is None or spec.labels.get(LABEL_STACK) == stack)
        ]

    def inspect_container(self, name: str) -> dict[str, object]:
        env = next((spec.env for spec in self._containers if spec.name == name), {})
        return {"Config": {"Env": [f"{key}={value}" for key, value in env.items()]}}
