"""A volume's files as a tar.gz archive, read and written through a container that never starts.

``docker cp`` works on created containers, volumes included, so backing up
and restoring the faucet's identity needs no running faucet and runs no
command in the image. Archives hold paths relative to the mount point.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tarfile
from collections.abc import Iterator
from pathlib import PurePosixPath

from docker.errors import APIError, ImageNotFound, NotFound

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import DockerError, ImageNotFoundError, SettingsError
from unicity_infra.stack.spec import LABEL_MANAGED, LABEL_PREFIX

__all__ = ["container_env", "list_volume_files", "export_volume", "import_volume", "check_archive"]

logger = logging.getLogger(__name__)

LABEL_HELPER = f"{LABEL_PREFIX}.helper"
_MAX_ARCHIVE_BYTES = 512 * 1024 * 1024


def container_env(engine: DockerEngine, name: str) -> dict[str, str]:
    """Return the environment container NAME was created with; empty when it does not exist."""
    try:
        entries = engine.api.inspect_container(name)["Config"]["Env"] or []
    except NotFound:
        return {}
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


@contextlib.contextmanager
def _mounting_container(engine: DockerEngine, volume: str, *, image: str, target: str) -> Iterator[str]:
    """Create a container from IMAGE with VOLUME at TARGET, yield its id, and remove it afterwards."""
    try:
        created = engine.api.create_container(
            image=image,
            entrypoint=["/bin/true"],
            labels={LABEL_MANAGED: "true", LABEL_HELPER: "volume-archive"},
            host_config=engine.api.create_host_config(binds=[f"{volume}:{target}:rw"], network_mode="none"),
            network_disabled=True,
        )
    except ImageNotFound:
        raise ImageNotFoundError(image, "build it with 'unicity-infra images build faucet'") from None
    except APIError as exc:
        raise DockerError(f"creating a container to reach volume {volume!r} failed: {exc.explanation}") from exc
    try:
        yield created["Id"]
    finally:
        # v=True drops only the anonymous volumes of the image's other VOLUME lines.
        with contextlib.suppress(NotFound, APIError):
            engine.api.remove_container(created["Id"], force=True, v=True)


def _read_tar(engine: DockerEngine, container: str, path: str) -> bytes:
    try:
        stream, _ = engine.api.get_archive(container, path)
    except NotFound:
        return b""
    except APIError as exc:
        raise DockerError(f"reading {path} from the volume failed: {exc.explanation}") from exc
    return b"".join(stream)


def list_volume_files(engine: DockerEngine, volume: str, *, image: str, target: str, path: str) -> list[str]:
    """Return the entries under TARGET/PATH of VOLUME (mounted at TARGET), relative to it, without the directory itself."""
    with _mounting_container(engine, volume, image=image, target=target) as container:
        data = _read_tar(engine, container, f"{target}/{path}")
    if not data:
        return []
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = [PurePosixPath(member.name) for member in archive.getmembers()]
    return sorted(str(PurePosixPath(*name.parts[1:])) for name in names if len(name.parts) > 1)


def export_volume(engine: DockerEngine, volume: str, *, image: str, target: str) -> bytes:
    """Return the files of VOLUME as tar.gz bytes, paths relative to the volume, owners and modes kept."""
    with _mounting_container(engine, volume, image=image, target=target) as container:
        data = _read_tar(engine, container, target)

    output = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=output, mode="w:gz") as archive:
        for member in source.getmembers():
            parts = PurePosixPath(member.name).parts
            if len(parts) < 2:
                continue  # the mount point itself
            member.name = str(PurePosixPath(*parts[1:]))
            content = source.extractfile(member) if member.isfile() else None
            archive.addfile(member, content)
    return output.getvalue()


def check_archive(data: bytes, *, required_dir: str) -> list[tarfile.TarInfo]:
    """Return the members of tar.gz DATA after checking that it can be restored safely.

    Raises SettingsError when DATA is not a gzip-compressed tar archive, has a
    member that is not a plain file or directory, has an absolute path or
    ``..``, or lacks REQUIRED_DIR.
    """
    if len(data) > _MAX_ARCHIVE_BYTES:
        raise SettingsError("FILE", f"{len(data)} bytes", f"the archive is larger than {_MAX_ARCHIVE_BYTES} bytes")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SettingsError("FILE", "(archive)", f"it is not a tar.gz archive ({exc})") from None

    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise SettingsError("FILE", member.name, "the archive has a path outside the identity directory")
        if not (member.isfile() or member.isdir()):
            raise SettingsError("FILE", member.name, "the archive may contain only regular files and directories")
    if not any(PurePosixPath(member.name).parts[:1] == (required_dir,) for member in members):
        raise SettingsError("FILE", "(archive)", f"the archive has no {required_dir}/ directory; is it an identity backup?")
    return members


def import_volume(engine: DockerEngine, volume: str, data: bytes, *, image: str, target: str, required_dir: str) -> int:
    """Unpack tar.gz DATA into VOLUME (mounted at TARGET) and return the number of entries written.

    The archive is checked first with :func:`check_archive`; existing files of
    the same name are replaced, others are left alone.
    """
    members = check_archive(data, required_dir=required_dir)
    plain = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as source, tarfile.open(fileobj=plain, mode="w") as archive:
        for member in members:
            archive.addfile(member, source.extractfile(member) if member.isfile() else None)

    with _mounting_container(engine, volume, image=image, target=target) as container:
        try:
            engine.api.put_archive(container, target, plain.getvalue())
        except APIError as exc:
            raise DockerError(f"writing the archive into volume {volume!r} failed: {exc.explanation}") from exc
    logger.info("restored volume=%s entries=%d", volume, len(members))
    return len(members)
