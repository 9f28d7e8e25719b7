"""CLI of ``up`` and ``env``."""

from __future__ import annotations

import json
import sys

import click

from unicity_infra.errors import SettingsError
from unicity_infra.settings import parse_domain

__all__ = ["register"]


def register(cli: click.Group) -> None:
    from unicity_infra.cli import EXIT_CODES_HELP, IMAGE_OVERRIDES_ENV, Context, image_override_items, pass_context
    from unicity_infra.commands.up import DEFAULT_DOMAIN_SUFFIX, MODES
    from unicity_infra.harness.env import FORMATS

    @cli.command(epilog=EXIT_CODES_HELP)
    @click.argument("services", nargs=-1)
    @click.option("--mode", type=click.Choice(MODES), default="direct", show_default=True,
                  help="direct: plain ports on 127.0.0.1; local-edge: HAProxy and Pebble as local containers; "
                       "production: the host's HAProxy and Let's Encrypt.")
    @click.option("--domain-suffix", default=DEFAULT_DOMAIN_SUFFIX, show_default=True,
                  help="Names are SERVICE.SUFFIX in local-edge and production modes.")
    @click.option("--relay-domain", help="Host name of the relay in local-edge and production modes "
                                         "(overrides the suffix).")
    @click.option("--aggregator-domain", help="Host name of the aggregator in local-edge and production modes "
                                              "(overrides the suffix).")
    @click.option("--faucet-domain", help="Host name of the faucet in local-edge and production modes "
                                          "(overrides the suffix).")
    @click.option("--ssl-email", help="Contact e-mail for the ACME account.")
    @click.option("--haproxy-api-key-file", metavar="FILE",
                  help="File holding the bearer key of the edge's registration API (production mode); "
                       "local-edge mode uses the key its edge requires.")
    @click.option("--relay-port", default="7777", show_default=True, help="Host port of the relay in direct mode.")
    @click.option("--aggregator-port", default="3000", show_default=True,
                  help="Host port of the aggregator in direct mode.")
    @click.option("--faucet-port", default="7780", show_default=True,
                  help="Host port of the faucet's discovery document in direct mode.")
    @click.option("--image-override", "image_overrides", multiple=True, metavar="KEY=IMAGE",
                  envvar=IMAGE_OVERRIDES_ENV,
                  help="Run IMAGE for an aggregator component KEY (bft-core, mongo, aggregator-go, curl, "
                       "genesis-tools, aggregator-proxy); repeatable, or space-separated in "
                       "UNICITY_INFRA_IMAGE_OVERRIDES. A flag replaces the variable's entry for its KEY only.")
    @click.option("--timeout", "timeout_s", type=float, default=180.0, show_default=True,
                  help="Seconds to wait for each service to become healthy.")
    @click.option("--fresh", is_flag=True,
                  help="First remove the stack's state: relay events, faucet identity, aggregator genesis and "
                       "MongoDB (certificates are kept). Prints what it removes.")
    @click.option("--yes", is_flag=True, help="Confirm --fresh without asking; required without a terminal.")
    @click.option("--json", "json_output", is_flag=True,
                  help="Print one JSON document with every endpoint on stdout; no progress output.")
    @pass_context
    def up(context: Context, services: tuple[str, ...], mode: str, domain_suffix: str, relay_domain: str | None,
           aggregator_domain: str | None, faucet_domain: str | None,
           ssl_email: str | None, haproxy_api_key_file: str | None, relay_port: str, aggregator_port: str, faucet_port: str,
           image_overrides: tuple[str, ...],
           timeout_s: float, fresh: bool, yes: bool, json_output: bool) -> None:
        """Bring up SERVICES (default: all) in dependency order and wait until every one is healthy.

        Running it again on a healthy stack changes nothing and reports that.

        \b
        Examples:
          unicity-infra up                       # direct mode, ws://127.0.0.1:7777
          unicity-infra up --mode local-edge     # wss://relay.unicity.localhost through HAProxy
          unicity-infra up --mode production --domain-suffix example.org --ssl-email ops@example.org
          unicity-infra up --mode production --relay-domain relay.example.org \\
              --aggregator-domain gateway.example.org --faucet-domain faucet.example.org
        """
        from unicity_infra.commands.up import UpSettings, bring_up, order_services
        from unicity_infra.settings import parse_email, parse_readable_file, parse_timeout
        from unicity_infra.terminal import TerminalProgress

        suffix = parse_domain(f"x.{domain_suffix}", option="--domain-suffix")[2:]
        domains = parse_service_domains(relay=relay_domain, aggregator=aggregator_domain, faucet=faucet_domain)
        if mode != "direct":
            check_service_names(order_services(services), domains=domains, suffix=suffix,
                                production=mode == "production")
        settings = UpSettings(
            mode=mode,
            services=services,
            domain_suffix=suffix,
            domains=domains,
            ports=parse_service_ports(order_services(services) if mode == "direct" else (), relay=relay_port,
                                      aggregator=aggregator_port, faucet=faucet_port),
            ssl_email=parse_email(ssl_email) if ssl_email else None,
            haproxy_api_key_file=str(parse_readable_file(haproxy_api_key_file, option="--haproxy-api-key-file"))
            if haproxy_api_key_file else None,
            timeout_s=parse_timeout(timeout_s),
            image_overrides=image_override_items(image_overrides),
        )
        progress = context.progress(json_output=json_output)
        engine = context.engine()
        if fresh:
            _wipe_before_up(context, engine, services=list(order_services(services)), yes=yes, progress=progress)
        try:
            result = bring_up(engine, settings, stack=context.stack, progress=progress)
        finally:
            if isinstance(progress, TerminalProgress):
                progress.close()
        if json_output:
            context.out.print_json(json.dumps(result.to_json()))
            return
        context.err.print("no changes: the stack already runs these settings" if not result.changed
                          else "stack is up", markup=False)
        for key, value in result.endpoints.to_json().items():
            if value is not None:
                context.out.print(f"{key:22} {value}", markup=False)

    def _wipe_before_up(context: Context, engine, *, services: list[str], yes: bool, progress) -> None:  # noqa: ANN001
        from unicity_infra.cli import _confirm_wipe
        from unicity_infra.commands.down import plan_wipe, take_down

        planned = plan_wipe(engine, stack=context.stack, services=services, wipe=True, wipe_certificates=False)
        if "genesis" in planned:
            # Only a chain's genesis needs a confirmation: wallets must fetch a new trust base.
            _confirm_wipe(context, planned, flag="--fresh", yes=yes)
        removed = take_down(engine, stack=context.stack, services=services, wipe=True, wipe_certificates=False,
                            progress=progress)
        for kind, names in removed.items():
            for name in names:
                context.err.print(f"--fresh removed {kind[:-1]} {name}", markup=False)

    @cli.command(epilog=EXIT_CODES_HELP)
    @click.option("--format", "output_format", type=click.Choice(FORMATS), default="shell", show_default=True,
                  help="dotenv (KEY=value), shell (export KEY=value, quoted where the shell needs it) or json.")
    @pass_context
    def env(context: Context, output_format: str) -> None:
        """Print the variables the SDK's e2e suites and the faucet read, for the running stack.

        \b
        Example:
          eval "$(unicity-infra env)"
        """
        from unicity_infra.commands.up import read_endpoints
        from unicity_infra.harness.env import harness_variables, render_variables

        variables = harness_variables(read_endpoints(context.engine(), stack=context.stack))
        sys.stdout.write(render_variables(variables, output_format=output_format))


def parse_service_ports(distinct: tuple[str, ...], **ports_by_service: str) -> dict[str, int]:
    """Validate the host port given per service (keyword = service) and check that the DISTINCT services share none."""
    from unicity_infra.settings import parse_port

    ports = {service: parse_port(port, option=f"--{service}-port") for service, port in ports_by_service.items()}
    owners: dict[int, str] = {}
    for service in distinct:
        other = owners.setdefault(ports[service], service)
        if other != service:
            raise SettingsError(f"--{service}-port", ports[service],
                                f"the {other} already uses this port (--{other}-port); give each service its own port")
    return ports


def parse_service_domains(**domains_by_service: str | None) -> dict[str, str]:
    """Validate the host names given per service (keyword = service) and return those that are set."""
    return {service: parse_domain(domain, option=f"--{service}-domain")
            for service, domain in domains_by_service.items() if domain}


def check_service_names(services: tuple[str, ...], *, domains: dict[str, str], suffix: str,
                        production: bool) -> None:
    """Check the host names SERVICES get in an edge mode: their own DOMAINS entry, else SERVICE.SUFFIX.

    Raises SettingsError when two services would share a name, and in PRODUCTION mode
    when a service has no name of its own while SUFFIX is the local default.
    """
    from unicity_infra.commands.up import DEFAULT_DOMAIN_SUFFIX

    if production and suffix == DEFAULT_DOMAIN_SUFFIX:
        unnamed = [service for service in services if service not in domains]
        if unnamed:
            flags = _join_words([f"--{service}-domain" for service in unnamed])
            raise SettingsError("--mode", "production", f"production mode needs a public host name for the "
                                f"{_join_words(unnamed)}: give {flags}, or a --domain-suffix other than "
                                f"{DEFAULT_DOMAIN_SUFFIX}")

    owners: dict[str, str] = {}
    for service in services:
        name = domains.get(service, f"{service}.{suffix}")
        other = owners.get(name)
        if other is not None:
            # At most one of the two names comes from the suffix, so blame the explicit one.
            blamed, sharing = (service, other) if service in domains else (other, service)
            source = f"--{sharing}-domain" if sharing in domains else "--domain-suffix"
            raise SettingsError(f"--{blamed}-domain", name, f"the {sharing} gets this host name too (from "
                                f"{source}); give each service its own host name")
        owners[name] = service


def _join_words(words: list[str]) -> str:
    """Join WORDS for a sentence: ``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
