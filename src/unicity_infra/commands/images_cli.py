"""CLI of ``images``: build the wrapper images."""

from __future__ import annotations

import json

import click

from unicity_infra.cli import EXIT_CODES_HELP, Context, pass_context
from unicity_infra.settings import IMAGES
from unicity_infra.terminal import TerminalProgress

__all__ = ["images", "register"]



@click.group(epilog=EXIT_CODES_HELP)
def images() -> None:
    """Build the wrapper images (and, offline, their base and upstream stand-ins)."""


@images.command("build", epilog=EXIT_CODES_HELP)
@click.argument("services", nargs=-1, type=click.Choice(IMAGES))
@click.option("--offline", is_flag=True,
              help="Build the base from Debian packages and the upstream images from source (crates.io) instead of pulling.")
@click.option("--json", "json_output", is_flag=True, help="Print the built tags as one JSON document; no progress output.")
@pass_context
def images_build(context: Context, services: tuple[str, ...], offline: bool, json_output: bool) -> None:
    """Build the images of SERVICES (default: all, including the local edge).

    Offline builds are cached outside the clone (UNICITY_INFRA_CACHE, default
    ~/.cache/unicity-infra) and keyed by recipe, so a second build is quick.
    """
    from unicity_infra.engine.images import build_images

    progress = context.progress(json_output=json_output)
    try:
        tags = build_images(list(services or IMAGES), offline=offline, progress=progress)
    finally:
        if isinstance(progress, TerminalProgress):
            progress.close()
    if json_output:
        context.out.print_json(json.dumps({"images": tags}))
    else:
        for service, tag in tags.items():
            context.err.print(f"built {service}: {tag}", markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(images)
