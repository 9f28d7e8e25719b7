"""CLI of ``images``: build, export the build context of, and push the wrapper images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from unicity_infra.cli import EXIT_CODES_HELP, Context, pass_context
from unicity_infra.engine.recipes.release import (
    DEFAULT_REPOSITORY,
    parse_registry,
    parse_repository,
)
from unicity_infra.settings import IMAGES
from unicity_infra.terminal import TerminalProgress

__all__ = ["images", "register"]

_REPOSITORY_HELP = (
    "Name prefix of the local images: SERVICE's image is REPOSITORY/SERVICE "
    f"(default {DEFAULT_REPOSITORY}, the name 'run' and 'up' use)."
)


@click.group(epilog=EXIT_CODES_HELP)
def images() -> None:
    """Build the wrapper images (and, offline, their base and upstream stand-ins) and push them to a registry."""


@images.command("build", epilog=EXIT_CODES_HELP)
@click.argument("services", nargs=-1, type=click.Choice(IMAGES))
@click.option("--offline", is_flag=True,
              help="Build the base from Debian packages and the upstream images from source (crates.io) instead of pulling.")
@click.option("--repository", default=DEFAULT_REPOSITORY, show_default=True, help=_REPOSITORY_HELP)
@click.option("--json", "json_output", is_flag=True, help="Print the built tags as one JSON document; no progress output.")
@pass_context
def images_build(context: Context, services: tuple[str, ...], offline: bool, repository: str, json_output: bool) -> None:
    """Build the images of SERVICES (default: all, including the local edge).

    Each image is tagged VERSION (the package version) and, when its files are
    committed in a git checkout, sha-SHORT_SHA too. Its OCI labels record the
    source URL, git revision, version, licence and creation time (from
    SOURCE_DATE_EPOCH, else the commit time), and org.unicity.infra.pinned.*
    labels the pinned upstream images. Offline builds are cached outside the
    clone (UNICITY_INFRA_CACHE, default ~/.cache/unicity-infra) and keyed by
    recipe, so a second build is quick.
    """
    from unicity_infra.engine.images import build_images, image_tags
    from unicity_infra.engine.provenance import read_provenance

    repository = parse_repository(repository)
    provenance = read_provenance()
    selected = list(services or IMAGES)

    progress = context.progress(json_output=json_output)
    try:
        built = build_images(selected, offline=offline, repository=repository, provenance=provenance,
                             progress=progress)
    finally:
        if isinstance(progress, TerminalProgress):
            progress.close()
    tags = {service: image_tags(service, repository=repository, provenance=provenance) for service in built}
    if json_output:
        context.out.print_json(json.dumps({"images": built, "tags": tags}))
    else:
        for service, service_tags in tags.items():
            context.err.print(f"built {service}: {' '.join(service_tags)}", markup=False)


@images.command("context", epilog=EXIT_CODES_HELP)
@click.argument("service", type=click.Choice(IMAGES))
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_context
def images_context(context: Context, service: str, directory: Path) -> None:
    """Write SERVICE's build context into DIRECTORY and print its build arguments, labels and tags as JSON.

    The context is what 'images build' sends to the Docker Engine: the
    Dockerfile, its setup script and the package files the image copies. The
    build arguments name the pinned upstream images, so another builder (the
    CI workflow's buildx, for example) builds the same image from a registry.
    DIRECTORY must be empty or missing. Needs no Docker Engine.
    """
    from unicity_infra.engine.images import export_wrapper_context
    from unicity_infra.engine.provenance import read_provenance

    exported = export_wrapper_context(service, directory, provenance=read_provenance())
    context.out.print_json(json.dumps(exported))


@images.command("push", epilog=EXIT_CODES_HELP)
@click.argument("services", nargs=-1, type=click.Choice(IMAGES))
@click.option("--registry", required=True,
              help="Registry host and namespace to push to, e.g. ghcr.io/ORG; SERVICE's image goes to "
                   "REGISTRY/REPOSITORY/SERVICE.")
@click.option("--repository", default=DEFAULT_REPOSITORY, show_default=True, help=_REPOSITORY_HELP)
@click.option("--allow-offline", is_flag=True,
              help="Push images built with --offline too (from the debootstrapped base and stand-ins).")
@click.option("--json", "json_output", is_flag=True,
              help="Print the pushed references and digests as one JSON document; no progress output.")
@pass_context
def images_push(
    context: Context, services: tuple[str, ...], registry: str, repository: str, allow_offline: bool,
    json_output: bool,
) -> None:
    """Push the built images of SERVICES (default: all) with their version and sha- tags.

    Credentials come from the Docker configuration, as for 'docker push':
    run 'docker login HOST' first (it stores them in ~/.docker/config.json or
    a credential helper). No option takes a password, so none ends up in the
    shell history.
    """
    from unicity_infra.engine.registry import push_images

    registry = parse_registry(registry)
    repository = parse_repository(repository)
    selected = list(services or IMAGES)

    progress = context.progress(json_output=json_output)
    try:
        pushed = push_images(selected, registry=registry, repository=repository, allow_offline=allow_offline,
                             progress=progress)
    finally:
        if isinstance(progress, TerminalProgress):
            progress.close()
    if json_output:
        document = {service: [{"ref": item.ref, "digest": item.digest} for item in items]
                    for service, items in pushed.items()}
        context.out.print_json(json.dumps({"registry": registry, "pushed": document}))
    else:
        for service, items in pushed.items():
            context.err.print(f"pushed {service}: {' '.join(item.ref for item in items)}", markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(images)
