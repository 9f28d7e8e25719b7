"""CLI of ``export compose|kubernetes``: write the stack ``up`` runs for other tools to apply."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from unicity_infra.cli import EXIT_CODES_HELP, Context, pass_context

if TYPE_CHECKING:
    from unicity_infra.commands.up import UpSettings
    from unicity_infra.export.stack import ExportedStack

__all__ = ["export", "register"]

KUBERNETES_MODES = ("direct", "production")


# Options of 'up' that a settings file's [up] table also gives the exports, so a
# file describes one stack for 'up' and for both exports.
SHARED_UP_OPTIONS = ("domain_suffix", "relay_domain", "aggregator_domain", "faucet_domain", "ssl_email",
                     "relay_port", "aggregator_port", "faucet_port", "image_overrides")


@click.group(epilog=EXIT_CODES_HELP)
@click.pass_context
def export(click_context: click.Context) -> None:
    """Write the stack 'up' runs as a compose file or as Kubernetes manifests.

    Both are translated from the same container specs 'up' applies; nothing is
    started and no Docker Engine is needed. Settings from the [up] table of
    the settings file apply too; [export.compose] and [export.kubernetes]
    tables and flags win over them.
    """
    root = (click_context.parent.default_map if click_context.parent else None) or {}
    up_table = root.get("up") if isinstance(root.get("up"), dict) else {}
    shared = {name: value for name, value in up_table.items() if name in SHARED_UP_OPTIONS}
    own = click_context.default_map or {}
    click_context.default_map = {
        # The local edge exists only on Docker, so [up]'s mode applies to compose alone.
        "compose": {**shared, **({"mode": up_table["mode"]} if "mode" in up_table else {}), **own.get("compose", {})},
        "kubernetes": {**shared, **own.get("kubernetes", {})},
    }


def _stack_options(function: Callable[..., Any]) -> Callable[..., Any]:
    from unicity_infra.commands.up import DEFAULT_DOMAIN_SUFFIX

    options = [
        click.argument("services", nargs=-1),
        click.option("--domain-suffix", default=DEFAULT_DOMAIN_SUFFIX, show_default=True,
                     help="Names are SERVICE.SUFFIX in local-edge and production modes."),
        click.option("--relay-domain", help="Host name of the relay (overrides the suffix)."),
        click.option("--aggregator-domain", help="Host name of the aggregator (overrides the suffix)."),
        click.option("--faucet-domain", help="Host name of the faucet (overrides the suffix)."),
        click.option("--ssl-email", help="Contact e-mail for the ACME account."),
        click.option("--relay-port", default="7777", show_default=True, help="Host port of the relay in direct mode."),
        click.option("--aggregator-port", default="3000", show_default=True,
                     help="Host port of the aggregator in direct mode."),
        click.option("--faucet-port", default="7780", show_default=True,
                     help="Host port of the faucet's discovery document in direct mode."),
        click.option("--registry", metavar="REGISTRY",
                     help="Take our wrapper images from REGISTRY (e.g. ghcr.io/ORG), where 'images push' puts "
                          "them; without it the local tags are used."),
        click.option("--image-override", "image_overrides", multiple=True, metavar="KEY=IMAGE",
                     envvar="UNICITY_INFRA_IMAGE_OVERRIDES",
                     help="Use IMAGE for an aggregator component KEY (bft-core, mongo, aggregator-go, curl, "
                          "genesis-tools, aggregator-proxy); repeatable."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _up_settings(mode: str, services: tuple[str, ...], options: dict[str, Any]) -> UpSettings:
    """Validate the options as 'up' does and return its UpSettings."""
    from unicity_infra.commands.up import UpSettings, order_services
    from unicity_infra.commands.up_cli import check_service_names, parse_service_domains
    from unicity_infra.settings import parse_domain, parse_email, parse_port

    suffix = parse_domain(f"x.{options['domain_suffix']}", option="--domain-suffix")[2:]
    domains = parse_service_domains(relay=options["relay_domain"], aggregator=options["aggregator_domain"],
                                    faucet=options["faucet_domain"])
    if mode != "direct":
        check_service_names(order_services(services), domains=domains, suffix=suffix, production=mode == "production")
    return UpSettings(
        mode=mode,
        services=services,
        domain_suffix=suffix,
        domains=domains,
        ports={"relay": parse_port(options["relay_port"], option="--relay-port"),
               "aggregator": parse_port(options["aggregator_port"], option="--aggregator-port"),
               "faucet": parse_port(options["faucet_port"], option="--faucet-port")},
        ssl_email=parse_email(options["ssl_email"]) if options["ssl_email"] else None,
        image_overrides=tuple(item for value in options["image_overrides"] for item in value.split()),
    )


def _with_registry(exported: ExportedStack, options: dict[str, Any]) -> ExportedStack:
    from unicity_infra.engine.recipes.release import parse_registry
    from unicity_infra.export.stack import from_registry

    if not options["registry"]:
        return exported
    return from_registry(exported, parse_registry(options["registry"]))


def _command_line(context: Context, kind: str, mode: str, services: tuple[str, ...]) -> str:
    stack = "" if context.stack == "default" else f"--stack {context.stack} "
    return f"unicity-infra {stack}export {kind} --mode {mode}" + "".join(f" {service}" for service in services)


@export.command("compose", epilog=EXIT_CODES_HELP)
@_stack_options
@click.option("--mode", type=click.Choice(("direct", "local-edge", "production")), default="direct",
              show_default=True,
              help="As for 'up': direct publishes plain ports on 127.0.0.1; local-edge adds the local edge; "
                   "production registers with the host's HAProxy.")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="File to write; '-' is standard output.")
@pass_context
def export_compose(context: Context, services: tuple[str, ...], mode: str, output: str, **options: Any) -> None:
    """Write a compose file that starts SERVICES (default: all) as 'up --mode MODE' does.

    Same images, environment, networks, volumes, health checks and start
    order; secrets stay files, listed under 'secrets'.

    \b
    Example:
      unicity-infra export compose --output compose.yaml
      docker-compose -f compose.yaml up -d
    """
    from unicity_infra.export.compose import render_compose
    from unicity_infra.export.output import parse_destination, write_destination
    from unicity_infra.export.stack import plan_export

    destination = parse_destination(output)
    exported = _with_registry(plan_export(_up_settings(mode, services, options), stack=context.stack), options)
    text = render_compose(exported, command=_command_line(context, "compose", mode, services))

    if destination.path is None:
        sys.stdout.write(text)
        return
    write_destination(destination, {destination.path.name: text})
    names = ", ".join(exported.plans)
    context.err.print(f"wrote {destination.path} ({names}); start it with "
                      f"'docker-compose -f {destination.path} up -d'", markup=False)


@export.command("kubernetes", epilog=EXIT_CODES_HELP)
@_stack_options
@click.option("--mode", type=click.Choice(("direct", "local-edge", "production")), default="direct",
              show_default=True,
              help="direct: plain HTTP inside the cluster; production: TLS in the containers, with a "
                   "LoadBalancer Service per domain. local-edge has no meaning on a cluster.")
@click.option("-o", "--output", default="-", show_default=True, metavar="DIR|FILE",
              help="A directory (one file per service) or a .yaml file; '-' is standard output.")
@pass_context
def export_kubernetes(context: Context, services: tuple[str, ...], mode: str, output: str, **options: Any) -> None:
    """Write Kubernetes manifests that run SERVICES (default: all) on an existing cluster.

    Create the Secrets and push the images first, as docs/kubernetes.md describes.

    \b
    Example:
      unicity-infra export kubernetes --mode production --domain-suffix example.org --output k8s/
      kubectl apply -f k8s/
    """
    from unicity_infra.errors import SettingsError
    from unicity_infra.export.kubernetes import kubernetes_files, render_kubernetes
    from unicity_infra.export.output import parse_destination, write_destination
    from unicity_infra.export.stack import plan_export

    if mode not in KUBERNETES_MODES:
        raise SettingsError("--mode", mode, "the local edge runs only on Docker; use direct (plain HTTP inside the "
                            "cluster) or production (TLS in the containers)")
    destination = parse_destination(output, allow_directory=True)
    exported = _with_registry(plan_export(_up_settings(mode, services, options), stack=context.stack,
                                          edge_registration=False), options)
    command = _command_line(context, "kubernetes", mode, services)

    if destination.path is None:
        sys.stdout.write(render_kubernetes(exported, command=command))
        return
    if destination.is_directory:
        files = kubernetes_files(exported, command=command)
    else:
        files = {destination.path.name: render_kubernetes(exported, command=command)}
    written = write_destination(destination, files)
    context.err.print(f"wrote {', '.join(str(path) for path in written)}; apply with "
                      f"'kubectl apply -f {destination.path}'", markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(export)
