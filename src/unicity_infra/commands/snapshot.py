"""``snapshot save|restore|list``: archive and restore a stack's volumes while it is down.

Each volume is read and written through a container that is created but never
started, so the Docker daemon does the tar work and no image needs a shell.
A snapshot is a directory with one tar file per volume and a manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import InfraError, SettingsError
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import IMAGES, wrapper_image
from unicity_infra.stack.spec import LABEL_MANAGED, LABEL_ROLE, LABEL_STACK

__all__ = ["SnapshotError", "Snapshot", "snapshot_dir", "save_snapshot", "restore_snapshot", "list_snapshots",
           "parse_snapshot_name"]

logger = logging.getLogger(__name__)

# Edge state is shared by every stack and is not part of one stack's snapshot.
SNAPSHOT_ROLES = ("data", "genesis", "certificates")
MOUNT_POINT = "/snapshot"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SnapshotError(InfraError):
    """A snapshot cannot be saved or restored in the current state."""


@dataclass(frozen=True)
class Snapshot:
    """A saved snapshot: where it is and what it holds."""

    name: str
    stack: str
    path: Path
    created: str
    volumes: dict[str, dict[str, object]]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "stack": self.stack, "path": str(self.path), "created": self.created,
                "volumes": self.volumes}


def parse_snapshot_name(value: str) -> str:
    if not _NAME.match(value):
        raise SettingsError("NAME", value, "a snapshot name has 1-64 letters, digits, '_', '.' or '-'")
    return value


def snapshot_dir(stack: str) -> Path:
    """Return the directory holding STACK's snapshots."""
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "unicity-infra" / "snapshots" / stack


def _require_stack_down(engine: DockerEngine, stack: str) -> None:
    running = [info.name for info in engine.list_containers(stack=stack)
               if info.state == "running" and info.service != "edge"]
    if running:
        raise SnapshotError(
            f"containers of stack {stack!r} are running ({', '.join(running)}); a snapshot of live volumes may be "
            "inconsistent. Stop them with 'unicity-infra down' (volumes are kept) and try again"
        )


def _helper_image(engine: DockerEngine) -> str:
    for service in IMAGES:
        if engine.image_exists(wrapper_image(service)):
            return wrapper_image(service)
    raise SnapshotError("no unicity-infra image is present to mount volumes with; run 'unicity-infra images build'")


def _stack_volumes(engine: DockerEngine, stack: str) -> list[str]:
    return sorted({volume for role in SNAPSHOT_ROLES for volume in engine.list_volumes(stack=stack, role=role)})


def save_snapshot(engine: DockerEngine, *, stack: str, name: str, force: bool = False,
                  progress: Progress = SILENT) -> Snapshot:
    """Archive every data, genesis and certificate volume of STACK under NAME.

    Raises SnapshotError while the stack runs, when it has no volumes, or when
    NAME exists and FORCE is not set.
    """
    _require_stack_down(engine, stack)
    volumes = _stack_volumes(engine, stack)
    if not volumes:
        raise SnapshotError(f"stack {stack!r} has no volumes to save; start it once with 'unicity-infra run' or 'up'")
    target = snapshot_dir(stack) / name
    if target.exists() and not force:
        raise SnapshotError(f"snapshot {name!r} of stack {stack!r} exists at {target}; add --force to replace it")

    staging = target.with_name(f".{name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    # Volumes hold private keys (root key, faucet wallet, certificates): only the owner may read a snapshot.
    staging.mkdir(parents=True)
    staging.chmod(0o700)
    image = _helper_image(engine)
    manifest: dict[str, dict[str, object]] = {}
    for volume in volumes:
        progress.action(f"archive volume {volume}")
        archive = staging / f"{volume}.tar"
        digest = hashlib.sha256()
        with os.fdopen(os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            for chunk in engine.export_volume(volume, image=image, mount_point=MOUNT_POINT):
                digest.update(chunk)
                handle.write(chunk)
        manifest[volume] = {"labels": engine.volume_labels(volume), "sha256": digest.hexdigest(),
                            "bytes": archive.stat().st_size}

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest_file = staging / "manifest.json"
    manifest_file.touch(mode=0o600)
    manifest_file.write_text(json.dumps({"stack": stack, "name": name, "created": created, "volumes": manifest},
                                        indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    logger.info("saved snapshot name=%s stack=%s volumes=%d", name, stack, len(manifest))
    return Snapshot(name=name, stack=stack, path=target, created=created, volumes=manifest)


def _load(stack: str, name: str) -> Snapshot:
    path = snapshot_dir(stack) / name
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        known = ", ".join(snapshot.name for snapshot in list_snapshots(stack)) or "none"
        raise SnapshotError(f"no snapshot {name!r} for stack {stack!r} (known: {known}); see 'unicity-infra snapshot list'")
    document = json.loads(manifest_file.read_text())
    return Snapshot(name=name, stack=stack, path=path, created=document["created"], volumes=document["volumes"])


def restore_snapshot(engine: DockerEngine, *, stack: str, name: str, progress: Progress = SILENT) -> Snapshot:
    """Replace STACK's volumes with those saved under NAME, after checking every archive.

    Raises SnapshotError while the stack runs, when the snapshot is missing or an
    archive does not match its recorded checksum; nothing is changed then.
    """
    _require_stack_down(engine, stack)
    snapshot = _load(stack, name)
    for volume, facts in snapshot.volumes.items():
        archive = snapshot.path / f"{volume}.tar"
        if not archive.is_file() or _sha256(archive) != facts["sha256"]:
            raise SnapshotError(f"archive {archive} is missing or damaged (checksum mismatch); the snapshot cannot "
                                "be restored and no volume was changed")

    image = _helper_image(engine)
    for volume, facts in snapshot.volumes.items():
        labels = dict(facts["labels"])  # type: ignore[arg-type]
        if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_STACK) != stack or LABEL_ROLE not in labels:
            raise SnapshotError(f"volume {volume} in snapshot {name!r} does not belong to stack {stack!r}")
        progress.action(f"restore volume {volume}")
        engine.remove_volume(volume, progress=progress)
        engine.create_volume(volume, labels=labels)
        with (snapshot.path / f"{volume}.tar").open("rb") as handle:
            engine.import_volume(volume, handle.read(), image=image, mount_point=MOUNT_POINT)
    logger.info("restored snapshot name=%s stack=%s volumes=%d", name, stack, len(snapshot.volumes))
    return snapshot


def list_snapshots(stack: str) -> list[Snapshot]:
    directory = snapshot_dir(stack)
    if not directory.is_dir():
        return []
    return [_load(stack, path.name) for path in sorted(directory.iterdir()) if (path / "manifest.json").is_file()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
