"""The aggregator stack's part of ``run``, ``status`` and ``trust-base export``.

It plans the stack with the run's image overrides, checks that every image is
present and removes the chain state for ``--fresh``. It reads the genesis trust
base back from the stack's containers and decides whether the aggregator is
ready, which takes ``/health`` ok with the database connected and a block
height that advances.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from unicity_infra.commands.down import GENESIS_ROLE, take_down
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import ContainerFailedError, DockerError, InfraError
from unicity_infra.paths import state_dir
from unicity_infra.probes.report import Report, Status
from unicity_infra.probes.trust_base import (
    TrustBaseError,
    decode_trust_base_document,
    trust_base_sha256,
)
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import AggregatorSettings, RunSettings
from unicity_infra.stack.aggregator import (
    AGGREGATOR_CONFIG_DIR,
    AGGREGATOR_IMAGES,
    GENESIS_DIR,
    LABEL_COMPONENT,
    PROXY_CONFIG_DIR,
    SERVICE,
    aggregator_plan,
)
from unicity_infra.stack.plan import StackPlan, default_container_name

__all__ = [
    "HEIGHT_WAIT_S",
    "READINESS_CHECKS",
    "GenesisTrustBase",
    "chain_state_volumes",
    "check_aggregator_ready",
    "check_images_present",
    "default_trust_base_path",
    "plan_aggregator_stack",
    "prepare_aggregator_run",
    "probe_aggregator_stack",
    "read_genesis_trust_base",
    "save_trust_base",
    "stack_images",
    "wipe_chain_state",
]

logger = logging.getLogger(__name__)

# Seconds within which the block height must rise before 'run' gives up.
# NOTE: measured only against the stand-in, which makes a block per second;
# a real aggregator's first certified round after a fresh genesis may be slower.
HEIGHT_WAIT_S = 30.0
# The probe checks that make up readiness; the trust-base checks are reported but do not decide it.
READINESS_CHECKS = ("health", "block height")
# Mount point of the genesis volume in each component, in the order they are read.
_GENESIS_MOUNTS = (
    ("aggregator-proxy", PROXY_CONFIG_DIR),
    ("aggregator", AGGREGATOR_CONFIG_DIR),
    ("genesis-verify", GENESIS_DIR),
)


@dataclass(frozen=True)
class GenesisTrustBase:
    """The trust base of a stack's genesis, as read from one of its containers."""

    data: bytes
    container: str
    path: str
    modified_at: datetime | None

    @property
    def sha256(self) -> str:
        return trust_base_sha256(self.data)

    def summary(self) -> dict[str, object]:
        """Return network id, epoch, root node count, SHA-256 and creation time, with stable keys for ``--json``."""
        try:
            document = decode_trust_base_document(self.data)
        except TrustBaseError:
            document = {}
        return {
            "networkId": document.get("networkId"),
            "epoch": document.get("epoch"),
            "rootNodes": len(document.get("rootNodes") or []),
            "sha256": self.sha256,
            "createdAt": self.modified_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.modified_at else None,
            "source": f"{self.container}:{self.path}",
        }


def stack_images(settings: RunSettings) -> dict[str, str]:
    """Return every image of the stack by key: the pins, then ``--image``, then the overrides."""
    options = settings.aggregator or AggregatorSettings()
    return {**AGGREGATOR_IMAGES, "aggregator-proxy": settings.image, **options.image_overrides}


def plan_aggregator_stack(settings: RunSettings, *, stack: str) -> StackPlan:
    """Return the aggregator stack's plan for SETTINGS, with its network id and images."""
    options = settings.aggregator or AggregatorSettings()
    return aggregator_plan(settings, stack=stack, network_id=options.network_id, images=stack_images(settings))


def check_images_present(engine: DockerEngine, images: dict[str, str]) -> None:
    """Raise DockerError naming every image of IMAGES (by key) that is not present locally."""
    missing = {key: ref for key, ref in images.items() if not engine.image_exists(ref)}
    if not missing:
        return

    listed = ", ".join(f"{key} ({ref})" for key, ref in missing.items())
    hints = []
    if "aggregator-proxy" in missing:
        hints.append("build the proxy with 'unicity-infra images build aggregator' (add --offline without a registry)")
    if set(missing) - {"aggregator-proxy"}:
        hints.append(
            "pull the upstream images with 'docker pull IMAGE' where a registry is reachable, or run others "
            "with --image-override KEY=IMAGE (repeatable, or UNICITY_INFRA_IMAGE_OVERRIDES)"
        )
    raise DockerError(f"the aggregator stack needs images that are not present locally: {listed}; {'; '.join(hints)}")


def chain_state_volumes(engine: DockerEngine, *, stack: str) -> dict[str, list[str]]:
    """Return the aggregator's genesis and data (MongoDB) volumes of STACK, by role."""
    found = {role: engine.list_volumes(stack=stack, service=SERVICE, role=role) for role in (GENESIS_ROLE, "data")}
    return {role: names for role, names in found.items() if names}


def wipe_chain_state(engine: DockerEngine, *, stack: str, progress: Progress = SILENT) -> list[str]:
    """Remove the aggregator's containers and its genesis and data volumes; return the removed volumes.

    The certificate volume stays, so a fresh chain does not cost a new certificate.
    """
    removed = take_down(engine, stack=stack, services=[SERVICE], wipe=True, wipe_certificates=False, progress=progress)
    logger.info("removed the aggregator chain state stack=%s volumes=%s", stack, ",".join(removed["volumes"]))
    return removed["volumes"]


def read_genesis_trust_base(engine: DockerEngine, *, stack: str) -> GenesisTrustBase:
    """Read trust-base.json from the genesis volume through a container of STACK that mounts it.

    Stopped containers work too. Raises InfraError when no container of the
    stack has the file, which means the stack never finished its genesis.
    """
    components = {info.labels.get(LABEL_COMPONENT): info.name for info in engine.list_containers(stack=stack, service=SERVICE)}
    for component, directory in _GENESIS_MOUNTS:
        container = components.get(component)
        if container is None:
            continue
        path = f"{directory}/trust-base.json"
        try:
            data, modified_at = engine.copy_file(container, path)
        except DockerError as exc:
            logger.debug("no trust base in container=%s path=%s: %s", container, path, exc)
            continue
        return GenesisTrustBase(data=data, container=container, path=path, modified_at=modified_at)
    raise InfraError(
        f"no genesis trust base in stack {stack!r}: none of its aggregator containers has one; "
        f"start the stack with 'unicity-infra --stack {stack} run aggregator'"
    )


def save_trust_base(trust_base: GenesisTrustBase, path: Path) -> Path:
    """Write the trust base to PATH atomically, readable by everyone (it is public), and return PATH."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(trust_base.data)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    return path


def default_trust_base_path(stack: str) -> Path:
    """Return where ``run aggregator`` keeps a copy of STACK's trust base, under the user's state directory."""
    return state_dir() / "trust-base" / f"{stack}.json"


def check_aggregator_ready(engine: DockerEngine, report: Report, *, stack: str) -> None:
    """Raise ContainerFailedError, with the aggregator's last log lines, when REPORT shows it is not ready.

    Ready means the health check (status ok, database connected) and the block
    height check (it advanced) passed. A report that stopped earlier, at TCP
    or TLS, fails on its own and is left to the caller.
    """
    failed = [check for check in report.checks if check.name in READINESS_CHECKS and check.status is Status.FAIL]
    if not failed:
        return
    container = default_container_name(stack, "aggregator")
    reasons = "; ".join(f"{check.name}: {check.detail}" for check in failed)
    raise ContainerFailedError(container, f"is not ready: {reasons}", log_tail=engine.log_tail(container))


def prepare_aggregator_run(engine: DockerEngine, settings: RunSettings, *, stack: str,
                           progress: Progress = SILENT) -> list[str]:
    """Check the stack's images and, for ``--fresh``, remove the chain state; return notes for the user.

    Raises DockerError naming the missing images before anything is changed.
    """
    options = settings.aggregator or AggregatorSettings()
    notes = []
    check_images_present(engine, stack_images(settings))
    if options.image_overrides:
        notes.append("image overrides: " + ", ".join(f"{key}={ref}" for key, ref in options.image_overrides.items()))

    if options.fresh:
        progress.stage("Removing the aggregator's chain state (--fresh)")
        removed = wipe_chain_state(engine, stack=stack, progress=progress)
        notes.append(
            f"--fresh removed {', '.join(removed)}; a new genesis is minted" if removed
            else "--fresh found no chain state to remove; a new genesis is minted"
        )
    return notes


def probe_aggregator_stack(
    engine: DockerEngine,
    endpoint: str,
    *,
    stack: str,
    connect: tuple[str, int] | None,
    ca_file: Path | None,
) -> tuple[Report, GenesisTrustBase, Path]:
    """Probe the running stack at ENDPOINT against its own genesis trust base, then check readiness.

    The trust base is saved to the default path and the served one must equal
    it byte for byte. Returns the report, the trust base and where it was saved.
    Raises ContainerFailedError, with the aggregator's log lines, when the
    health or block height check failed.
    """
    from unicity_infra.probes.aggregator import probe_aggregator

    trust_base = read_genesis_trust_base(engine, stack=stack)
    saved = save_trust_base(trust_base, default_trust_base_path(stack))
    report = probe_aggregator(endpoint, connect=connect, ca_file=ca_file, trust_base_file=saved,
                              height_wait_s=HEIGHT_WAIT_S)
    check_aggregator_ready(engine, report, stack=stack)
    return report, trust_base, saved
