"""Build the wrapper images and, without a registry, the base and upstream images they start FROM.

Offline, the base comes from Debian packages (debootstrap, then ``docker
import``) and the relay upstream from the nostr-rs-relay crate built on this
host. Recipes and cache keys live in ``engine/recipes``; this module runs them
and keeps the results in the cache directory and the Docker Engine.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import docker
import docker.errors

from unicity_infra.engine.provenance import package_dir, read_provenance
from unicity_infra.engine.recipes import (
    BaseRecipe,
    CrateRecipe,
    StandinRecipe,
    WrapperRecipe,
    cache_dir,
    detect_debian_mirror,
)
from unicity_infra.engine.recipes.release import (
    DEFAULT_REPOSITORY,
    Provenance,
    wrapper_labels,
    wrapper_tags,
)
from unicity_infra.errors import (
    DockerError,
    ImageBuildError,
    ImageNotFoundError,
    SettingsError,
)
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import (
    IMAGES,
    UPSTREAM_IMAGES,
    service_wrapper,
    wrapper_image,
)

__all__ = [
    "WrapperContext",
    "build_images",
    "build_offline_base",
    "build_relay_standin",
    "build_wrapper_image",
    "export_wrapper_context",
    "image_tags",
    "is_offline_image",
    "relay_binary",
    "wrapper_context",
]

logger = logging.getLogger(__name__)

TAIL_LINES = 20
BUILD_TIMEOUT_S = 3600
OFFLINE_LABEL = "org.unicity.infra.offline"
RECIPE_LABEL = "org.unicity.infra.recipe"
# Dockerfiles and the setup script they share, relative to the package directory.
RECIPES_SUBDIR = "engine/recipes/images"
SETUP_SCRIPT = "image-setup.sh"

# Upstream images each wrapper starts FROM besides the base, by their key in
# settings.UPSTREAM_IMAGES. Each becomes the build argument <KEY>_IMAGE.
WRAPPER_UPSTREAMS: dict[str, tuple[str, ...]] = {
    "relay": ("relay",),
    "faucet": ("faucet",),
    "aggregator-proxy": (),
    "edge": (),
}
# Subpackages of unicity_infra each image copies; they import only the standard library.
WRAPPER_PACKAGES: dict[str, tuple[str, ...]] = {
    "relay": ("container",),
    "faucet": ("container",),
    "aggregator-proxy": ("container",),
    "edge": ("edge",),
}
# Names a local image that replaces the faucet upstream, which no registry
# serves and which cannot be built offline: a local js-faucet build or the
# test stand-in.
FAUCET_IMAGE_ENV = "UNICITY_INFRA_FAUCET_IMAGE"

_T = TypeVar("_T")


def build_offline_base(*, progress: Progress = SILENT) -> str:
    """Build the Debian trixie base that replaces the ssl-manager image offline and return its tag.

    A second call is cheap: an existing tag is kept, and a cached root file
    system tarball is imported again without running debootstrap.

    Raises ImageBuildError when debootstrap, tar or the import fails, and
    DockerError when the Docker Engine is unreachable.
    """
    recipe = BaseRecipe()
    tag = recipe.tag
    progress.stage(f"Offline base image {tag}")
    client = _docker_client()
    if _image_exists(client, tag):
        progress.note(f"{tag} is already built")
        return tag

    tarball = cache_dir() / f"base-{recipe.digest}.tar"
    if tarball.is_file():
        progress.note(f"reusing the cached root file system {tarball}")
    else:
        _create_rootfs_tarball(recipe, tarball, image=tag, progress=progress)

    _import_tarball(client, tarball, recipe, progress=progress)
    logger.info("built offline base image=%s tarball=%s", tag, tarball)
    return tag


def build_relay_standin(*, base_image: str, progress: Progress = SILENT) -> str:
    """Build the image that replaces the upstream relay image offline and return its tag.

    The image is BASE_IMAGE plus nostr-rs-relay from crates.io at
    ``/usr/src/app/nostr-rs-relay``. The binary is built on this host once per
    crate recipe and kept in the cache directory.

    Raises ImageBuildError when a host build tool is missing or cargo or docker
    build fails, and DockerError when the Docker Engine is unreachable.
    """
    crate = CrateRecipe()
    recipe = StandinRecipe(crate=crate, base_image=base_image)
    tag = recipe.tag
    progress.stage(f"Relay stand-in image {tag}")
    client = _docker_client()
    if _image_exists(client, tag):
        progress.note(f"{tag} is already built")
        return tag

    binary = _cargo_install(crate, image=tag, progress=progress)

    with tempfile.TemporaryDirectory(prefix="unicity-infra-standin-") as context:
        shutil.copy2(binary, Path(context) / crate.binary)
        (Path(context) / "Dockerfile").write_text(recipe.dockerfile)
        _docker_build(
            client, Path(context), tag, buildargs={"BASE_IMAGE": base_image}, labels=recipe.labels, progress=progress
        )
    logger.info("built relay stand-in image=%s base=%s", tag, base_image)
    return tag


def build_wrapper_image(
    service: str,
    *,
    base_image: str,
    upstream_images: dict[str, str],
    repository: str = DEFAULT_REPOSITORY,
    provenance: Provenance | None = None,
    progress: Progress = SILENT,
) -> str:
    """Build SERVICE's wrapper image from ``engine/recipes/images/<service>.Dockerfile`` and return its version tag.

    UPSTREAM_IMAGES maps the keys in WRAPPER_UPSTREAMS[service] to image
    references. Missing base or upstream images are pulled first. The image is
    tagged ``<repository>/<service>:<version>`` and, when its files are
    committed in a git checkout, ``…:sha-<short sha>`` too; it carries the
    OCI labels of PROVENANCE (read from the package when None). It is marked
    offline when every image it starts FROM is an offline one. An existing tag
    built from the same recipe is kept and only tagged again.

    Raises SettingsError for an unknown service, ImageBuildError when a pull
    or the build fails, and DockerError when the Docker Engine is unreachable.
    """
    if service not in WRAPPER_UPSTREAMS:
        raise SettingsError("SERVICE", service, f"expected one of: {', '.join(sorted(WRAPPER_UPSTREAMS))}")
    missing = [key for key in WRAPPER_UPSTREAMS[service] if key not in upstream_images]
    if missing:
        raise ValueError(f"upstream_images has no key {', '.join(missing)}, which the {service} wrapper image needs")
    provenance = provenance or read_provenance()
    context = wrapper_context(service)
    tags = wrapper_tags(service, repository=repository, provenance=provenance, context_paths=context.source_paths)
    tag = tags[0]

    progress.stage(f"Wrapper image {tag}")
    _note_uncommitted(provenance.uncommitted(context.source_paths), service=service, tag=tag, progress=progress)
    client = _docker_client()
    parents = {"base": base_image} | {key: upstream_images[key] for key in WRAPPER_UPSTREAMS[service]}
    for ref in parents.values():
        _pull_if_missing(client, ref, image=tag, progress=progress)

    offline = all(_has_offline_label(client, ref) for ref in parents.values())
    build_args = {"BASE_IMAGE": base_image} | {
        _build_arg_name(key): upstream_images[key] for key in WRAPPER_UPSTREAMS[service]
    }
    labels = wrapper_labels(
        service, provenance=provenance, context_paths=context.source_paths, parents=parents, offline=offline
    )
    recipe = WrapperRecipe(
        service=service,
        dockerfile=context.dockerfile,
        context_files=context.files,
        build_args={name: _image_id_or_ref(client, value) for name, value in build_args.items()},
        labels_without_recipe=labels,
    )
    if _image_label(client, tag, RECIPE_LABEL) == recipe.digest:
        progress.note(f"{tag} is up to date")
        _add_tags(client, tag, tags[1:], progress=progress)
        return tag

    replaced = _image_id_or_ref(client, tag) if _image_exists(client, tag) else None
    with tempfile.TemporaryDirectory(prefix=f"unicity-infra-{service}-") as directory:
        context.write(Path(directory))
        _docker_build(client, Path(directory), tag, buildargs=build_args, labels=recipe.labels, progress=progress)
    _add_tags(client, tag, tags[1:], progress=progress)
    if replaced and replaced != _image_id_or_ref(client, tag):
        _remove_replaced_image(client, replaced)
    logger.info("built wrapper image=%s service=%s offline=%s tags=%s", tag, service, offline, ",".join(tags))
    return tag


def build_images(
    services: list[str],
    *,
    offline: bool,
    repository: str = DEFAULT_REPOSITORY,
    provenance: Provenance | None = None,
    progress: Progress = SILENT,
) -> dict[str, str]:
    """Build the wrapper image of each service and return service → version tag.

    The aggregator's wrapper is its TLS proxy, ``aggregator-proxy``; the
    aggregator stack's upstream images (bft-core, MongoDB, aggregator-go) are
    run as pinned and never built here. With OFFLINE the offline base and the
    upstream stand-ins are built first; without it the pinned upstream images
    are pulled, which needs a registry. :func:`image_tags` lists every tag an
    image gets.
    """
    unknown = [service for service in services
               if service not in IMAGES or service_wrapper(service) not in WRAPPER_UPSTREAMS]
    if unknown:
        raise SettingsError("SERVICE", unknown[0], f"expected one of: {', '.join(IMAGES)}")
    wrappers = {service: service_wrapper(service) for service in services}
    faucet_image = os.environ.get(FAUCET_IMAGE_ENV, "").strip() or None
    if offline and "faucet" in wrappers and faucet_image is None:
        wrappers = _skip_offline_faucet(wrappers, progress=progress)
    provenance = provenance or read_provenance()
    _note_provenance(provenance, progress=progress)

    if offline:
        base_image = build_offline_base(progress=progress)
        upstreams = _build_standins(wrappers.values(), base_image=base_image, progress=progress)
    else:
        base_image = UPSTREAM_IMAGES["ssl-manager"]
        upstreams = dict(UPSTREAM_IMAGES)
    if faucet_image is not None and "faucet" in wrappers:
        progress.note(f"faucet upstream: {faucet_image} (from {FAUCET_IMAGE_ENV}) in place of {UPSTREAM_IMAGES['faucet']}")
        upstreams["faucet"] = faucet_image

    return {
        service: build_wrapper_image(
            wrapper, base_image=base_image, upstream_images=upstreams, repository=repository,
            provenance=provenance, progress=progress,
        )
        for service, wrapper in wrappers.items()
    }


def image_tags(service: str, *, repository: str = DEFAULT_REPOSITORY, provenance: Provenance) -> list[str]:
    """Return every tag ``build_images`` gives SERVICE's wrapper image, the version tag first."""
    wrapper = service_wrapper(service)
    paths = wrapper_context(wrapper).source_paths
    return wrapper_tags(wrapper, repository=repository, provenance=provenance, context_paths=paths)


def export_wrapper_context(service: str, directory: Path, *, provenance: Provenance) -> dict[str, object]:
    """Write SERVICE's build context into DIRECTORY and return the build arguments, labels and tags for it.

    The build arguments name the pinned upstream images (the faucet's from
    FAUCET_IMAGE_ENV when set), so another builder, such as the CI
    workflow's buildx, produces the image ``images build`` would from a
    registry. DIRECTORY must be empty or missing. Raises SettingsError for an
    unknown service or a non-empty DIRECTORY.
    """
    wrapper = service_wrapper(service)
    if service not in IMAGES or wrapper not in WRAPPER_UPSTREAMS:
        raise SettingsError("SERVICE", service, f"expected one of: {', '.join(IMAGES)}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SettingsError("DIRECTORY", str(directory), "expected an empty or missing directory for the build context")
    upstreams = dict(UPSTREAM_IMAGES)
    if faucet_image := os.environ.get(FAUCET_IMAGE_ENV, "").strip():
        upstreams["faucet"] = faucet_image
    context = wrapper_context(wrapper)

    directory.mkdir(parents=True, exist_ok=True)
    context.write(directory)
    parents = {"base": upstreams["ssl-manager"]} | {key: upstreams[key] for key in WRAPPER_UPSTREAMS[wrapper]}
    build_args = {"BASE_IMAGE": parents["base"]} | {
        _build_arg_name(key): upstreams[key] for key in WRAPPER_UPSTREAMS[wrapper]
    }
    labels = wrapper_labels(
        wrapper, provenance=provenance, context_paths=context.source_paths, parents=parents, offline=False
    )
    return {
        "service": service,
        "image": wrapper,
        "context": str(directory),
        "build_args": build_args,
        "labels": labels,
        "tags": image_tags(service, provenance=provenance),
    }


def is_offline_image(tag: str) -> bool:
    """Tell whether TAG was built from the offline base and stand-ins only.

    Raises ImageNotFoundError when TAG is not present locally.
    """
    client = _docker_client()
    if not _image_exists(client, tag):
        raise ImageNotFoundError(tag, "build it with 'unicity-infra images build --offline'")
    return _has_offline_label(client, tag)


def _skip_offline_faucet(wrappers: dict[str, str], *, progress: Progress) -> dict[str, str]:
    """Drop the faucet from an offline build with a one-line note; fail when it is the only image requested."""
    reason = (
        f"its upstream {UPSTREAM_IMAGES['faucet']} cannot be built offline; set {FAUCET_IMAGE_ENV} to a local "
        "image in its place (a js-faucet build, or the test stand-in from tests/fixtures/standins/faucet)"
    )
    remaining = {service: wrapper for service, wrapper in wrappers.items() if wrapper != "faucet"}
    if not remaining:
        raise ImageBuildError(wrapper_image("faucet"), f"no faucet upstream: {reason}")
    progress.note(f"skipping the faucet image: {reason}")
    return remaining


def _build_standins(services: Iterable[str], *, base_image: str, progress: Progress) -> dict[str, str]:
    # The faucet has no stand-in built here: build_images takes it from FAUCET_IMAGE_ENV.
    needed = {key for service in services for key in WRAPPER_UPSTREAMS[service] if key != "faucet"}
    builders: dict[str, Callable[..., str]] = {"relay": build_relay_standin}
    return {key: builders[key](base_image=base_image, progress=progress) for key in sorted(needed)}


# --- offline base ---------------------------------------------------------


def _create_rootfs_tarball(recipe: BaseRecipe, tarball: Path, *, image: str, progress: Progress) -> None:
    """Debootstrap the root file system, prune it and write it to TARBALL atomically."""
    if os.geteuid() != 0:
        raise ImageBuildError(
            image,
            "debootstrap needs root, because it creates device nodes and runs package scripts in a chroot; "
            "run 'unicity-infra images build --offline' as root (for example with sudo)",
        )
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(image, "debootstrap not found on PATH; install it with 'apt-get install debootstrap'")
    mirror = detect_debian_mirror()
    progress.note(f"Debian mirror: {mirror}")

    tarball.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    rootfs = workdir / "rootfs"
    partial = workdir / tarball.name
    try:
        _run_command(recipe.debootstrap_args(rootfs, mirror), image=image, step="debootstrap", progress=progress)
        _prune_rootfs(rootfs)
        tar_args = ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."]
        _run_command(tar_args, image=image, step="tar", progress=progress)
        # The rename is atomic on one file system, so an interrupted build
        # leaves no tarball that a later build would take for complete.
        os.replace(partial, tarball)
    finally:
        _remove_tree(workdir)


def _prune_rootfs(rootfs: Path) -> None:
    """Remove APT lists, caches, documentation and the build host's identity from ROOTFS."""
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/log/*.log", "var/cache/debconf/*-old", "tmp/*", "usr/share/man/*", "usr/share/info/*"):
        for path in rootfs.glob(pattern):
            _remove_path(path)
    # Keep each package's copyright file; drop the rest of its documentation.
    for path in sorted((rootfs / "usr/share/doc").glob("*/*"), reverse=True):
        if path.name != "copyright":
            _remove_path(path)
    # debootstrap copies the host's resolver and host name. Docker provides both at run time.
    for name in ("etc/resolv.conf", "etc/hostname"):
        if (rootfs / name).is_file() or (rootfs / name).is_symlink():
            (rootfs / name).unlink()
            (rootfs / name).write_text("")
    # ssl-manager pre-creates the ACME HTTP-01 webroot.
    (rootfs / "var/www/acme-challenge/.well-known/acme-challenge").mkdir(parents=True, exist_ok=True)


def _import_tarball(client: docker.DockerClient, tarball: Path, recipe: BaseRecipe, *, progress: Progress) -> None:
    tag = recipe.tag
    repository, _, version = tag.rpartition(":")
    changes = recipe.docker_changes()
    progress.action(
        "docker import " + " ".join(f"--change {shlex.quote(change)}" for change in changes) + f" {tarball} {tag}"
    )

    def import_image() -> str:
        with tarball.open("rb") as data:
            return client.api.import_image_from_data(data, repository=repository, tag=version, changes=changes)

    try:
        reply = _call_with_progress(import_image, text=f"importing {tarball.name}", progress=progress)
    except docker.errors.APIError as exc:
        raise ImageBuildError(tag, f"docker import of {tarball}", [str(exc)]) from exc
    errors = [message for message in _json_lines(reply) if "error" in message]
    if errors:
        raise ImageBuildError(tag, f"docker import of {tarball}", [str(errors[-1]["error"])])


# --- relay stand-in -------------------------------------------------------


def relay_binary(*, progress: Progress = SILENT) -> Path:
    """Return the nostr-rs-relay binary the offline relay image carries, building it with cargo when missing.

    Raises ImageBuildError when cargo or a build prerequisite is missing or the build fails.
    """
    return _cargo_install(CrateRecipe(), image="nostr-rs-relay", progress=progress)


def _cargo_install(crate: CrateRecipe, *, image: str, progress: Progress) -> Path:
    """Return the cached binary of CRATE, building it with cargo when it is missing."""
    cache = cache_dir()
    root = cache / f"relay-{crate.digest}"
    binary = root / "bin" / crate.binary
    if binary.is_file():
        progress.note(f"reusing the cached {crate.crate} {crate.version} binary {binary}")
        return binary
    _check_cargo_prerequisites(image)

    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{root.name}.partial-", dir=cache))
    # One target directory for every recipe, so a changed recipe compiles
    # only the crates that changed.
    args = crate.cargo_args(partial, cache / "cargo-target")
    env = os.environ | {"CARGO_TERM_COLOR": "never", "CARGO_TERM_PROGRESS_WHEN": "never"}
    try:
        _run_command(args, image=image, step="cargo install", progress=progress, env=env)
        if not (partial / "bin" / crate.binary).is_file():
            raise ImageBuildError(image, f"cargo install left no {crate.binary} in {partial / 'bin'}")
        if root.exists():
            logger.info("another build cached %s first; keeping it", root)
        else:
            os.replace(partial, root)
    finally:
        _remove_tree(partial)
    return binary


def _check_cargo_prerequisites(image: str) -> None:
    """Raise ImageBuildError naming the Debian packages needed to compile nostr-rs-relay."""
    if shutil.which("cargo") is None:
        raise ImageBuildError(
            image, "cargo not found on PATH; install a Rust toolchain (https://rustup.rs) and run the build again"
        )
    missing = [package for tool, package in (("protoc", "protobuf-compiler"), ("pkg-config", "pkg-config"))
               if shutil.which(tool) is None]
    if not _has_openssl_headers():
        missing.append("libssl-dev")
    if missing:
        raise ImageBuildError(
            image,
            f"building nostr-rs-relay needs the packages {', '.join(missing)}; "
            f"install them with 'apt-get install {' '.join(missing)}'",
        )


def _has_openssl_headers() -> bool:
    if shutil.which("pkg-config") is None:
        return Path("/usr/include/openssl/ssl.h").is_file()
    status = subprocess.run(["pkg-config", "--exists", "openssl"], check=False, timeout=30)
    return status.returncode == 0


# --- wrapper images -------------------------------------------------------


@dataclass(frozen=True)
class WrapperContext:
    """The build context of a wrapper image.

    ``files`` maps paths in the context, besides the Dockerfile, to their
    bytes. ``source_paths`` lists the origin of the Dockerfile and those files
    relative to the package directory, to compare them with the git checkout.
    """

    dockerfile: str
    files: Mapping[str, bytes]
    source_paths: tuple[str, ...]

    def write(self, directory: Path) -> None:
        """Write the Dockerfile and files into DIRECTORY."""
        (directory / "Dockerfile").write_text(self.dockerfile)
        for relative, content in self.files.items():
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def wrapper_context(service: str) -> WrapperContext:
    """Read SERVICE's Dockerfile, the shared setup script and the package files the image copies.

    They are package data under ``engine/recipes/images``, so an installed
    wheel finds them as a source checkout does. Raises ImageBuildError when
    one is missing.
    """
    package = package_dir()
    dockerfile = _recipe_file(package, f"{service}.Dockerfile", service=service)
    setup_script = _recipe_file(package, SETUP_SCRIPT, service=service)
    files = {SETUP_SCRIPT: setup_script.read_bytes(), **_package_files(WRAPPER_PACKAGES[service])}
    sources = [dockerfile, setup_script]
    sources += [package / relative.removeprefix("unicity_infra/") for relative in files if relative != SETUP_SCRIPT]
    return WrapperContext(
        dockerfile=dockerfile.read_text(),
        files=files,
        source_paths=tuple(path.relative_to(package).as_posix() for path in sources),
    )


def _recipe_file(package: Path, name: str, *, service: str) -> Path:
    path = package / RECIPES_SUBDIR / name
    if not path.is_file():
        raise ImageBuildError(
            wrapper_image(service),
            f"{name} not found at {path}; reinstall unicity-infra, whose package data ships it",
        )
    return path


def _package_files(subpackages: Iterable[str] = ("container",)) -> dict[str, bytes]:
    """Return the package files a wrapper image copies, by their path in the build context."""
    package = package_dir()
    files = {"unicity_infra/__init__.py": (package / "__init__.py").read_bytes()}
    for subpackage in subpackages:
        for path in sorted((package / subpackage).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[f"unicity_infra/{path.relative_to(package).as_posix()}"] = path.read_bytes()
    return files


def _build_arg_name(upstream_key: str) -> str:
    """Return the build argument that names an upstream image: ``relay`` → ``RELAY_IMAGE``."""
    return upstream_key.upper().replace("-", "_") + "_IMAGE"


def _note_provenance(provenance: Provenance, *, progress: Progress) -> None:
    """Say which tags and labels the images get when there is no git checkout or no creation time."""
    if provenance.checkout is None:
        progress.note(
            f"{package_dir()} is not in a git checkout (an installed wheel): the images are tagged "
            f"{provenance.version} only, without a sha- tag, and their revision label is empty"
        )
    else:
        progress.note(f"git commit {provenance.checkout.revision}; each image is labelled with the last commit "
                      "that changed the files it copies")
    if not provenance.created_for(()):
        progress.note("the created label is empty: set SOURCE_DATE_EPOCH to the release time to fill it")


def _note_uncommitted(paths: list[str], *, service: str, tag: str, progress: Progress) -> None:
    if not paths:
        return
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    progress.note(
        f"files the {service} image copies have uncommitted changes ({shown}): it is tagged {tag} only and "
        f"its revision label is empty; commit them to get the sha- tag"
    )


def _add_tags(client: docker.DockerClient, image: str, refs: Iterable[str], *, progress: Progress) -> None:
    """Point each of REFS (``name:tag``) at IMAGE, skipping those that already do."""
    image_id = _image_id_or_ref(client, image)
    for ref in refs:
        if _image_id_or_ref(client, ref) == image_id:
            continue
        repository, _, tag = ref.rpartition(":")
        progress.action(f"docker tag {image} {ref}")
        try:
            client.api.tag(image, repository, tag, force=True)
        except docker.errors.APIError as exc:
            raise ImageBuildError(image, f"docker tag {image} {ref}", [str(exc)]) from exc


def _pull_if_missing(client: docker.DockerClient, ref: str, *, image: str, progress: Progress) -> None:
    if _image_exists(client, ref):
        return
    progress.action(f"docker pull {ref}")
    try:
        _call_with_progress(lambda: client.images.pull(ref), text=f"pulling {ref}", progress=progress)
    except docker.errors.APIError as exc:
        raise ImageBuildError(
            image,
            f"pulling {ref} failed, and the image is not present locally. Without a reachable image registry, "
            f"build the offline base and stand-ins with 'unicity-infra images build --offline'",
            [str(exc)],
        ) from exc


# --- Docker and process adapters ------------------------------------------


def _docker_client() -> docker.DockerClient:
    try:
        return docker.from_env(version="auto")
    except docker.errors.DockerException as exc:
        raise DockerError(
            f"the Docker Engine is not reachable ({exc}); start dockerd or point DOCKER_HOST at a running engine"
        ) from exc


def _image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_label(client: docker.DockerClient, ref: str, label: str) -> str | None:
    try:
        config = client.api.inspect_image(ref).get("Config") or {}
    except docker.errors.ImageNotFound:
        return None
    return (config.get("Labels") or {}).get(label)


def _has_offline_label(client: docker.DockerClient, ref: str) -> bool:
    return _image_label(client, ref, OFFLINE_LABEL) == "true"


def _image_id_or_ref(client: docker.DockerClient, value: str) -> str:
    """Return the image ID for an image reference present locally, else VALUE unchanged."""
    try:
        return client.api.inspect_image(value)["Id"]
    except (docker.errors.ImageNotFound, docker.errors.APIError):
        return value


def _remove_replaced_image(client: docker.DockerClient, image_id: str) -> None:
    """Remove the untagged image a rebuild replaced, unless a container still uses it."""
    try:
        client.api.remove_image(image_id)
    except docker.errors.APIError as exc:
        logger.debug("kept replaced image id=%s: %s", image_id, exc)


def _docker_build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    *,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    progress: Progress,
) -> None:
    args = " ".join(f"--build-arg {shlex.quote(f'{name}={value}')}" for name, value in buildargs.items())
    progress.action(f"docker build {args} --tag {tag} {context}")
    tail: deque[str] = deque(maxlen=TAIL_LINES)

    def output_lines() -> Iterator[str]:
        chunks = client.api.build(
            path=str(context), tag=tag, buildargs=dict(buildargs), labels=dict(labels),
            rm=True, forcerm=True, pull=False, decode=True, timeout=BUILD_TIMEOUT_S,
        )
        for chunk in chunks:
            if "error" in chunk:
                raise _BuildOutputError(str(chunk["error"]).strip())
            text = chunk.get("stream") or chunk.get("status") or ""
            yield from (line for line in text.splitlines() if line.strip())

    try:
        _follow(output_lines(), step="docker build", progress=progress, tail=tail)
    except _BuildOutputError as exc:
        raise ImageBuildError(tag, "docker build", [*tail, str(exc)][-TAIL_LINES:]) from exc
    except docker.errors.APIError as exc:
        raise ImageBuildError(tag, "docker build", [*tail, str(exc)][-TAIL_LINES:]) from exc


class _BuildOutputError(Exception):
    """An error message in the output stream of a docker build."""


def _run_command(
    args: list[str],
    *,
    image: str,
    step: str,
    progress: Progress,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ARGS and report its output as progress.

    Raises ImageBuildError with the last output lines when ARGS exits non-zero.
    """
    progress.action(shlex.join(args))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", env=None if env is None else dict(env),
        )
    except OSError as exc:
        raise ImageBuildError(image, f"{step}: cannot run {args[0]} ({exc})") from exc

    assert process.stdout is not None
    try:
        _follow(process.stdout, step=step, progress=progress, tail=tail)
        status = process.wait()
    except BaseException:
        # Interrupted (Ctrl-C): stop the child so that debootstrap's exit
        # traps unmount /proc and /sys from the root file system.
        _stop_process(process)
        raise
    if status != 0:
        raise ImageBuildError(image, f"{step} exited with status {status}", list(tail))


def _stop_process(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _follow(lines: Iterable[str], *, step: str, progress: Progress, tail: deque[str]) -> None:
    """Consume LINES, keeping the last ones in TAIL and reporting a wait about once a second.

    LINES is read in a thread, so a step that prints nothing for minutes (a
    large crate compiling) still gets its once-a-second progress report.
    """
    items: queue.Queue[object] = queue.Queue()
    done = object()

    def pump() -> None:
        try:
            for line in lines:
                items.put(line.rstrip())
        except BaseException as exc:  # handed to the calling thread
            items.put(exc)
        items.put(done)

    threading.Thread(target=pump, name=f"follow-{step}", daemon=True).start()
    started = time.monotonic()
    last_report = 0.0
    while True:
        try:
            item = items.get(timeout=1.0)
        except queue.Empty:
            item = None
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str) and item:
            tail.append(item)
            logger.debug("%s: %s", step, item)
        now = time.monotonic()
        if now - last_report >= 1.0:
            progress.wait(f"{step}: {tail[-1] if tail else 'starting'}", now - started)
            last_report = now


def _call_with_progress(function: Callable[[], _T], *, text: str, progress: Progress) -> _T:
    """Run FUNCTION in a thread and report a wait once a second until it returns."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed to the calling thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="docker-call", daemon=True)
    worker.start()
    started = time.monotonic()
    while worker.is_alive():
        worker.join(timeout=1.0)
        if worker.is_alive():
            progress.wait(text, time.monotonic() - started)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _json_lines(text: str | bytes) -> list[dict[str, object]]:
    """Parse the newline-separated JSON messages the Engine streams back."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    messages = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            message = {"status": line}
        if isinstance(message, dict):
            messages.append(message)
    return messages


# --- cache maintenance ------------------------------------------------------


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    """Remove PATH after unmounting anything a killed debootstrap left mounted inside it.

    A bind mount left under PATH (debootstrap binds /dev entries inside LXC
    containers) would make rmtree delete the host's files, so PATH is kept
    and a warning logged when a mount cannot be undone.
    """
    if not path.exists():
        return
    for mount_point in _mount_points_under(path):
        subprocess.run(["umount", "--lazy", mount_point], check=False, timeout=60)
    leftover = _mount_points_under(path)
    if leftover:
        logger.warning("not removing %s: still mounted inside it: %s; unmount them and delete it by hand",
                       path, ", ".join(leftover))
        return
    shutil.rmtree(path, ignore_errors=True)


def _mount_points_under(path: Path) -> list[str]:
    """Return the mount points at or below PATH, deepest first."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        # mountinfo escapes space, tab, newline and backslash as octal (proc(5)).
        point = fields[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)
