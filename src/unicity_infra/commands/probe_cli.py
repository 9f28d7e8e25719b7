"""CLI of ``probe``: check endpoints the way a wallet would."""

from __future__ import annotations

from pathlib import Path

import click

from unicity_infra.cli import EXIT_CODES_HELP, Context, _print_reports, pass_context
from unicity_infra.errors import EXIT_USAGE, InfraError, SettingsError
from unicity_infra.settings import parse_connect

__all__ = ["probe", "register"]

_WALLET_OPTIONS = ("aggregator_url", "relay_url", "faucet_url", "trust_base_url", "ca_file", "connect", "timeout_s",
                   "json_output")


class NoEndpointsError(InfraError):
    """Neither a stack recorded by ``up`` nor a URL given: nothing to probe."""

    exit_code = EXIT_USAGE


@click.group(epilog=EXIT_CODES_HELP, invoke_without_command=True)
@click.option("--aggregator-url", metavar="URL", help="Aggregator JSON-RPC URL (default: the one 'up' recorded).")
@click.option("--relay-url", metavar="URL", help="Nostr relay URL, ws:// or wss:// (default: the one 'up' recorded).")
@click.option("--faucet-url", metavar="URL", help="Faucet base URL (default: the one 'up' recorded).")
@click.option("--trust-base-url", metavar="URL", help="Trust-base URL (default: the one 'up' recorded).")
@click.option("--ca-file", help="Trust this CA file (default: the local edge's CA bundle in local-edge mode).")
@click.option("--connect", metavar="HOST:PORT",
              help="Connect every endpoint here instead of resolving its host; SNI and Host stay the URL's.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Seconds allowed per check.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_context
def probe(click_context: click.Context, aggregator_url: str | None, relay_url: str | None, faucet_url: str | None,
          trust_base_url: str | None, ca_file: str | None, connect: str | None, timeout_s: float,
          json_output: bool) -> None:
    """Check the stack as a wallet would, or one endpoint with 'probe SERVICE URL'.

    Without a service, checks the four URLs a wallet's Settings dialog takes:
    the aggregator returns its block height, the relay ends a subscription with
    EOSE, the faucet publishes its discovery document and the trust base loads,
    each over valid TLS for https and wss. The URLs are those 'up' recorded for the
    stack; each flag replaces one of them. In local-edge mode the endpoints are
    reached through the edge's published HTTPS port and verified against its CA.

    \b
    Examples:
      unicity-infra probe
      unicity-infra probe --relay-url wss://relay.example.org      # one URL replaced
      unicity-infra probe --aggregator-url https://aggregator.example.org \\
          --relay-url wss://relay.example.org --faucet-url https://faucet.example.org \\
          --trust-base-url https://aggregator.example.org/.well-known/trust-base.json
    """
    if click_context.invoked_subcommand is not None:
        misplaced = [name for name in _WALLET_OPTIONS
                     if click_context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if misplaced:
            option = next(param.opts[0] for param in click_context.command.params if param.name == misplaced[0])
            raise SettingsError(option, True, f"it applies to 'probe' without a service; put the options of "
                                f"'probe {click_context.invoked_subcommand}' after its name")
        return

    from unicity_infra.probes.wallet import check_wallet_url, probe_wallet
    from unicity_infra.settings import parse_readable_file

    context = click_context.find_object(Context)
    assert context is not None  # the root group always sets it
    overrides = {"aggregator": aggregator_url, "relay": relay_url, "faucet": faucet_url, "trust base": trust_base_url}
    for role, url in overrides.items():
        if url:
            check_wallet_url(role, url)
    endpoints = _wallet_endpoints(
        context, overrides,
        ca_file=parse_readable_file(ca_file, option="--ca-file") if ca_file else None,
        connect=parse_connect(connect) if connect else None,
        json_output=json_output,
    )
    _print_reports(context, probe_wallet(endpoints, timeout_s=timeout_s), json_output=json_output)


def _wallet_endpoints(context: Context, overrides: dict[str, str | None], *, ca_file: Path | None,
                      connect: tuple[str, int] | None, json_output: bool):
    """Merge the stack's recorded endpoints with OVERRIDES; read the record only when a URL is missing."""
    from unicity_infra.commands.up import read_endpoints, state_file
    from unicity_infra.probes.wallet import merge_endpoints

    stack = context.stack
    command = "unicity-infra" if stack == "default" else f"unicity-infra --stack {stack}"
    if all(overrides.values()):
        return merge_endpoints(recorded={}, overrides=overrides, recorded_from="all URLs given", connect=connect,
                               ca_file=ca_file)
    if not state_file(stack).is_file():
        if not any(overrides.values()):
            raise NoEndpointsError(
                f"nothing to probe: no endpoints recorded for stack {stack!r} and no URL given; run "
                f"'{command} up' first, or give --aggregator-url, --relay-url, --faucet-url and --trust-base-url"
            )
        return merge_endpoints(recorded={}, overrides=overrides, connect=connect, ca_file=ca_file,
                               recorded_from=f"no endpoints recorded for stack {stack!r}")

    engine = context.engine()
    recorded = read_endpoints(engine, stack=stack)
    edge_connect, ca_bundle = _local_edge(engine, stack=stack, command=command) if recorded.mode == "local-edge" \
        else (None, None)
    ca_bundle = ca_bundle or recorded.ca_bundle
    if not json_output:
        via = f", through the local edge at {edge_connect[0]}:{edge_connect[1]}" if edge_connect else ""
        trusted = f", trusting {ca_file or ca_bundle}" if (ca_file or ca_bundle) else ""
        context.err.print(f"probing the endpoints 'up' recorded for stack {stack!r} ({recorded.mode} mode{via}"
                          f"{trusted})", markup=False)
    return merge_endpoints(
        recorded={"aggregator": recorded.aggregator_url, "relay": recorded.relay_url,
                  "faucet": recorded.faucet_url, "trust base": recorded.trust_base_url},
        overrides=overrides,
        recorded_from=f"stack {stack!r} runs no such service",
        edge_connect=edge_connect,
        connect=connect,
        ca_file=ca_file or (Path(ca_bundle) if ca_bundle else None),
        recorded_network_id=recorded.network_id,
    )


def _local_edge(engine, *, stack: str, command: str) -> tuple[tuple[str, int], str | None]:
    """Return where the stack's local edge publishes HTTPS, and its CA bundle; raise InfraError when it is down."""
    from urllib.parse import urlsplit

    from unicity_infra.commands.edge import edge_status

    status = edge_status(engine, stack=stack)
    if status is None or status.state != "running" or not status.https_url:
        state = "missing" if status is None else status.state
        raise InfraError(f"the local edge of stack {stack!r} is {state}, so the stack's names reach nothing; run "
                         f"'{command} up --mode local-edge' again")
    https = urlsplit(status.https_url)
    return (https.hostname or "127.0.0.1", https.port or 443), status.ca_bundle


@probe.command("relay", epilog=EXIT_CODES_HELP)
@click.argument("url")
@click.option("--connect", metavar="HOST:PORT", help="Connect here instead of resolving the URL's host; SNI and Host stay the URL's.")
@click.option("--ca-file", help="Trust this CA (or self-signed certificate) file.")
@click.option("--insecure", is_flag=True, help="Skip chain verification; SAN and expiry are still reported.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Seconds allowed per check.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@pass_context
def probe_relay_command(context: Context, url: str, connect: str | None, ca_file: str | None,
                        insecure: bool, timeout_s: float, json_output: bool) -> None:
    """Check a Nostr relay at URL (ws:// or wss://): TLS, NIP-11 and a signed event round trip.

    \b
    Example:
      unicity-infra probe relay wss://relay.localhost --connect 127.0.0.1:7443 --ca-file cert.pem
    """
    from unicity_infra.probes.relay import probe_relay
    from unicity_infra.settings import parse_readable_file, parse_relay_url

    parse_relay_url(url, option="URL")
    report = probe_relay(url, connect=parse_connect(connect) if connect else None,
                         ca_file=parse_readable_file(ca_file, option="--ca-file") if ca_file else None,
                         insecure=insecure, timeout_s=timeout_s)
    _print_reports(context, [report], json_output=json_output)


@probe.command("aggregator", epilog=EXIT_CODES_HELP)
@click.argument("url")
@click.option("--connect", metavar="HOST:PORT", help="Connect here instead of resolving the URL's host; SNI and Host stay the URL's.")
@click.option("--ca-file", help="Trust this CA (or self-signed certificate) file.")
@click.option("--insecure", is_flag=True, help="Skip chain verification; SAN and expiry are still reported.")
@click.option("--trust-base", "trust_base", metavar="FILE",
              help="Genesis trust-base.json that /.well-known/trust-base.json must equal byte for byte.")
@click.option("--deep", is_flag=True,
              help="Also submit a signed certification request and wait for its proof with a unicity certificate.")
@click.option("--height-wait", "height_wait_s", type=float, default=15.0, show_default=True,
              help="Seconds within which the block height must rise.")
@click.option("--proof-wait", "proof_wait_s", type=float, default=45.0, show_default=True,
              help="Seconds --deep waits for the inclusion proof.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Seconds allowed per request.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@pass_context
def probe_aggregator_command(context: Context, url: str, connect: str | None, ca_file: str | None, insecure: bool,
                             trust_base: str | None, deep: bool, height_wait_s: float, proof_wait_s: float,
                             timeout_s: float, json_output: bool) -> None:
    """Check an aggregator at URL (http:// or https://): TLS, /health, block height advancing,
    trust base, and with --deep a certification request answered by an inclusion proof.

    \b
    Example:
      unicity-infra probe aggregator https://aggregator.localhost --ca-file ca.pem --deep
    """
    from unicity_infra.probes.aggregator import parse_aggregator_url, probe_aggregator
    from unicity_infra.settings import parse_readable_file

    parse_aggregator_url(url)
    report = probe_aggregator(
        url,
        connect=parse_connect(connect) if connect else None,
        ca_file=parse_readable_file(ca_file, option="--ca-file") if ca_file else None,
        insecure=insecure,
        trust_base_file=parse_readable_file(trust_base, option="--trust-base") if trust_base else None,
        deep=deep,
        height_wait_s=height_wait_s,
        proof_wait_s=proof_wait_s,
        timeout_s=timeout_s,
    )
    _print_reports(context, [report], json_output=json_output)


def register(cli: click.Group) -> None:
    cli.add_command(probe)
