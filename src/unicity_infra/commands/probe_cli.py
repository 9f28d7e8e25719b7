"""CLI of ``probe``: check endpoints the way a wallet would."""

from __future__ import annotations

import click

from unicity_infra.cli import EXIT_CODES_HELP, Context, _print_reports, pass_context
from unicity_infra.settings import parse_connect

__all__ = ["probe", "register"]



@click.group(epilog=EXIT_CODES_HELP)
def probe() -> None:
    """Check an endpoint the way a wallet would."""


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
