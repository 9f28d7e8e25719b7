"""CLI of the faucet: its ``run`` options, ``faucet identity export|import`` and ``probe faucet``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from unicity_infra.cli import EXIT_CODES_HELP, Context, _print_reports, pass_context

__all__ = ["register"]

# Options only 'run faucet' takes; build_run_settings rejects them for other services.
RUN_FAUCET_OPTIONS = (
    click.Option(["--nostr-relays"], metavar="URLS",
                 help="Faucet only: comma-separated ws:// or wss:// relays.  [default: the relay of this stack, if one runs]"),
    click.Option(["--aggregator-url"], metavar="URL",
                 help="Faucet only: aggregator the faucet mints through.  [default: the aggregator of this stack, if one runs]"),
    click.Option(["--trust-base-url"], metavar="URL",
                 help="Faucet only: trust base that verifies the aggregator; turns verification on.  "
                      "[default: the aggregator's /.well-known/trust-base.json when this stack runs it]"),
    click.Option(["--network"], metavar="NAME", help="Faucet only: Unicity network name.  [default: testnet]"),
    click.Option(["--nametag"], metavar="NAME",
                 help="Faucet only: nametag to register.  [default: f- and 12 characters of the instance id]"),
    click.Option(["--secret-file", "secret_files"], multiple=True, metavar="NAME=PATH",
                 help="Faucet only: mount PATH read-only and export its content to the faucet as NAME; repeatable."),
)


@click.group("faucet", epilog=EXIT_CODES_HELP)
def faucet_group() -> None:
    """Manage the faucet's identity: its wallet, tokens and generated tenant keys."""


@faucet_group.group("identity", epilog=EXIT_CODES_HELP)
def identity_group() -> None:
    """Back up and restore the faucet's identity volume.

    The wallet decides the faucet's chain pubkey, so restoring it keeps the
    pubkey wallets know. The archive contains private keys: keep it like one.
    """


def _identity_options(function):  # noqa: ANN001, ANN201 - click decorator plumbing
    options = [
        click.argument("file", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--force", is_flag=True, help="Replace an existing file (export) or identity (import)."),
        click.option("--container-name", help="Name of the faucet container.  [default: unicity-faucet, or unicity-STACK-faucet]"),
        click.option("--image", help="Image used to reach the volume.  [default: the faucet container's, else the wrapper's]"),
        click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@identity_group.command("export", epilog=EXIT_CODES_HELP)
@_identity_options
@pass_context
def identity_export(context: Context, file: Path, force: bool, container_name: str | None, image: str | None,
                    json_output: bool) -> None:
    """Write the faucet's identity volume to FILE (tar.gz, mode 0600); the faucet may keep running.

    \b
    Example:
      unicity-infra faucet identity export faucet-identity.tar.gz
    """
    from unicity_infra.commands.faucet import export_identity

    transfer = export_identity(
        context.engine(), stack=context.stack, container_name=_container_name(context, container_name),
        file=file, force=force, image=_image(image), progress=context.progress(json_output=json_output),
    )
    _print_transfer(context, transfer, verb="exported", json_output=json_output)


@identity_group.command("import", epilog=EXIT_CODES_HELP)
@_identity_options
@pass_context
def identity_import(context: Context, file: Path, force: bool, container_name: str | None, image: str | None,
                    json_output: bool) -> None:
    """Restore the faucet's identity volume from FILE before the faucet starts.

    The faucet container must be removed first ('unicity-infra down faucet'
    keeps the volume). An existing identity is replaced only with --force.

    \b
    Example:
      unicity-infra down faucet && unicity-infra faucet identity import faucet-identity.tar.gz --force
    """
    from unicity_infra.commands.faucet import import_identity
    from unicity_infra.settings import parse_readable_file

    transfer = import_identity(
        context.engine(), stack=context.stack, container_name=_container_name(context, container_name),
        file=parse_readable_file(str(file), option="FILE"), force=force, image=_image(image),
        progress=context.progress(json_output=json_output),
    )
    _print_transfer(context, transfer, verb="imported", json_output=json_output)


def _container_name(context: Context, container_name: str | None) -> str:
    from unicity_infra.settings import parse_container_name
    from unicity_infra.stack.plan import default_container_name

    return parse_container_name(container_name) if container_name else default_container_name(context.stack, "faucet")


def _image(image: str | None) -> str | None:
    from unicity_infra.settings import parse_image_ref

    return parse_image_ref(image) if image else None


def _print_transfer(context: Context, transfer, *, verb: str, json_output: bool) -> None:  # noqa: ANN001 - IdentityTransfer
    if json_output:
        context.out.print_json(json.dumps(transfer.to_json()))
        return
    direction = "to" if verb == "exported" else "from"
    context.err.print(
        f"{verb} faucet identity volume {transfer.volume} {direction} {transfer.file} ({transfer.entries} entries)",
        markup=False,
    )


@click.command("faucet", epilog=EXIT_CODES_HELP)
@click.argument("url")
@click.option("--connect", metavar="HOST:PORT", help="Connect here instead of resolving the URL's host; SNI and Host stay the URL's.")
@click.option("--ca-file", help="Trust this CA (or self-signed certificate) file.")
@click.option("--insecure", is_flag=True, help="Skip chain verification; SAN and expiry are still reported.")
@click.option("--relay", "relay_url", metavar="URL",
              help="Also publish a DM-kind event to the faucet's pubkey through this ws:// or wss:// relay.")
@click.option("--relay-connect", metavar="HOST:PORT",
              help="Connect to the relay here instead of resolving its host.  [default: --connect when the relay "
                   "and the faucet both use TLS or both do not, as behind one edge]")
@click.option("--relay-ca-file", help="Trust this CA file for the relay.  [default: --ca-file]")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Seconds allowed per check.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@pass_context
def probe_faucet_command(context: Context, url: str, connect: str | None, ca_file: str | None, insecure: bool,
                         relay_url: str | None, relay_connect: str | None, relay_ca_file: str | None,
                         timeout_s: float, json_output: bool) -> None:
    """Check a faucet at URL (its base or discovery URL): TLS, the discovery document
    running with a compressed chain pubkey, and with --relay a DM to that pubkey.

    \b
    Example:
      unicity-infra probe faucet https://faucet.example.org --relay wss://relay.example.org
    """
    from unicity_infra.probes.faucet import probe_faucet
    from unicity_infra.settings import parse_connect, parse_readable_file, parse_relay_url

    if relay_url:
        parse_relay_url(relay_url, option="--relay")
        if relay_connect is None and connect and relay_url.startswith("wss://") == url.startswith("https://"):
            relay_connect = connect
    report = probe_faucet(
        url,
        connect=parse_connect(connect) if connect else None,
        ca_file=parse_readable_file(ca_file, option="--ca-file") if ca_file else None,
        insecure=insecure,
        relay_url=relay_url,
        relay_connect=parse_connect(relay_connect, option="--relay-connect") if relay_connect else None,
        relay_ca_file=parse_readable_file(relay_ca_file, option="--relay-ca-file") if relay_ca_file else None,
        timeout_s=timeout_s,
    )
    _print_reports(context, [report], json_output=json_output)


def register(cli: click.Group) -> None:
    """Add the faucet's options to ``run``, the ``faucet`` group, and ``faucet`` to the ``probe`` group."""
    run_command = cli.commands["run"]
    known = {name for param in run_command.params for name in param.opts}
    run_command.params.extend(option for option in RUN_FAUCET_OPTIONS if not known & set(option.opts))
    cli.add_command(faucet_group)
    from unicity_infra.commands.probe_cli import probe

    probe.add_command(probe_faucet_command)
