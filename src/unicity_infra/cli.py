"""Command-line surface: parse options, call the library, render the results.

Exit codes: 0 success, 1 an operation or check failed, 2 invalid usage or
settings, 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import update_wrapper
from pathlib import Path

import click
from click.core import ParameterSource
from rich.table import Table

from unicity_infra import __version__
from unicity_infra.config import (
    CONFIG_ENVVAR,
    DEFAULT_CONFIG_FILE,
    FileSettings,
    find_settings_file,
    load_settings,
)
from unicity_infra.errors import EXIT_USAGE, InfraError, ProbeFailedError, SettingsError
from unicity_infra.paths import state_dir
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import (
    DEFAULT_HAPROXY_HOST,
    DEFAULT_HAPROXY_NET,
    SERVICES,
    build_run_settings,
    parse_docker_name,
    parse_timeout,
    service_wrapper,
)
from unicity_infra.stack.plan import default_container_name
from unicity_infra.stack.spec import DEFAULT_STACK
from unicity_infra.terminal import TerminalProgress, is_interactive, make_console

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)

# Images for the aggregator's components, "KEY=IMAGE KEY=IMAGE ...", as --image-override takes them.
IMAGE_OVERRIDES_ENV = "UNICITY_INFRA_IMAGE_OVERRIDES"
EXIT_CODES_HELP = "Exit codes: 0 success, 1 an operation or check failed, 2 invalid usage or settings, 130 interrupted."


class Context:
    """Options shared by every command."""

    def __init__(self, *, debug: bool, stack: str, file_settings: FileSettings | None = None) -> None:
        self.debug = debug
        self.stack = stack
        self.file_settings = file_settings or FileSettings()
        self.out = make_console(stderr=False)
        self.err = make_console(stderr=True)

    def progress(self, *, json_output: bool) -> Progress:
        return SILENT if json_output else TerminalProgress(self.err)

    def engine(self):  # noqa: ANN201 - imported lazily so --help works without the docker SDK reaching a daemon
        from unicity_infra.engine.docker import DockerEngine

        return DockerEngine()


def pass_context(function: Callable[..., object]) -> Callable[..., object]:
    """Pass our Context as the first argument, like click.make_pass_decorator(Context).

    A SettingsError about an option whose value came from the settings file also
    names the file, the table and the key, since the user did not type the flag.
    """

    def invoke_with_context(*args: object, **kwargs: object) -> object:
        click_context = click.get_current_context()
        context = click_context.find_object(Context)
        try:
            return click_context.invoke(function, context, *args, **kwargs)
        except SettingsError as exc:
            source = _file_source(click_context, context, exc.option)
            if source is None:
                raise
            raise SettingsError(exc.option, exc.value, f"{exc.accepted} (set by {source})") from exc

    return update_wrapper(invoke_with_context, function)


def _file_source(click_context: click.Context, context: Context | None, flag: str) -> str | None:
    """Describe where the settings file set the option FLAG of the running command, or return None if it did not."""
    if context is None:
        return None
    for parameter in click_context.command.params:
        if flag in parameter.opts and parameter.name:
            if click_context.get_parameter_source(parameter.name) is not ParameterSource.DEFAULT_MAP:
                return None
            return context.file_settings.source_of(_command_path(click_context), parameter.name)
    return None


def _command_path(click_context: click.Context) -> tuple[str, ...]:
    """Return the names of the running command below the root, e.g. ("edge", "up")."""
    names: list[str] = []
    while click_context.parent is not None:
        names.append(click_context.info_name or "")
        click_context = click_context.parent
    return tuple(reversed(names))


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unicity-infra")
@click.option("--debug", is_flag=True, help="Show debug logs and full tracebacks.")
@click.option(
    "--stack",
    default=DEFAULT_STACK,
    show_default=True,
    envvar="UNICITY_INFRA_STACK",
    help="Name of the stack; containers, networks and volumes of different stacks never mix.",
)
@click.option(
    "--config", "config_file", metavar="FILE", envvar=CONFIG_ENVVAR,
    help=f"Read settings from FILE instead of ./{DEFAULT_CONFIG_FILE}, which is read only when it exists. "
         "Flags and environment variables win over the file.",
)
@click.pass_context
def cli(click_context: click.Context, debug: bool, stack: str, config_file: str | None) -> None:
    """Build, run and check the Unicity development stack: Nostr relay, faucet and aggregator
    as TLS-wrapped Docker containers that register with an HAProxy edge.

    \b
    First steps:
      unicity-infra images build --offline        build images without a registry
      unicity-infra run relay --no-haproxy --ssl-test-mode \\
          --domain relay.localhost --publish 127.0.0.1:7443
      unicity-infra status
      unicity-infra down

    \b
    Settings can live in ./unicity-infra.toml (or --config FILE): top-level
    keys for the global options, a table per command, e.g.
      stack = "ci"
      [up]
      mode = "production"
      domain-suffix = "example.org"
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    file_settings = _read_settings_file(click_context, config_file)
    stack_source = None
    if click_context.get_parameter_source("stack") is ParameterSource.DEFAULT and "stack" in file_settings.global_options:
        stack = str(file_settings.global_options["stack"])
        stack_source = file_settings.source_of((), "stack")
    try:
        parse_docker_name(stack, option="--stack", kind="stack")
    except SettingsError as exc:
        if stack_source is None:
            raise
        raise SettingsError("--stack", stack, f"{exc.accepted} (set by {stack_source})") from exc

    # click hands each subcommand's context its table of this map and takes an option's value from it
    # only when neither a flag nor the option's environment variable sets one.
    click_context.default_map = file_settings.default_map
    click_context.obj = Context(debug=debug, stack=stack, file_settings=file_settings)


def _read_settings_file(click_context: click.Context, config_file: str | None) -> FileSettings:
    """Load the settings file named by --config or its variable, else ./unicity-infra.toml when present."""
    named_by = "--config" if click_context.get_parameter_source("config_file") is ParameterSource.COMMANDLINE \
        else CONFIG_ENVVAR
    path = find_settings_file(config_file, source=named_by)
    if path is None:
        return FileSettings()
    logger.debug("reading settings file path=%s", path)
    return load_settings(path, root=cli)


# run ----------------------------------------------------------------------------


def _run_options(function):  # noqa: ANN001, ANN201 - click decorator plumbing
    options = [
        click.option("--domain", help="Public host name of the service; enables TLS. Without it the service speaks plain HTTP."),
        click.option("--domain-aliases", help="Comma-separated extra host names served with their own certificates."),
        click.option("--ssl-email", help="Contact e-mail for the ACME account (Let's Encrypt expiry notices)."),
        click.option("--ssl-staging", is_flag=True, help="Use Let's Encrypt's staging CA (untrusted certificates, high rate limits)."),
        click.option("--ssl-test-mode", is_flag=True, help="Issue a self-signed certificate inside the container; no CA is contacted."),
        click.option("--ssl-required", default="true", show_default=True, metavar="BOOL",
                     help="Whether failing to obtain a certificate stops the container; false serves plain HTTP with a warning."),
        click.option("--no-ssl", is_flag=True, help="Serve plain HTTP even when --domain is set."),
        click.option("--ssl-https-port", metavar="PORT", help="Container port of the TLS listener, registered as https_port.  [default: 443]"),
        click.option("--extra-ports", metavar="JSON",
                     help='Extra edge listeners as JSON, e.g. [{"listen": 50001, "target": 50001, "mode": "tcp"}].'),
        click.option("--haproxy-host", help=f"Host name of the edge's registration API.  [default: {DEFAULT_HAPROXY_HOST}]"),
        click.option("--haproxy-net", help=f"Docker network shared with the edge.  [default: {DEFAULT_HAPROXY_NET}]"),
        click.option("--haproxy-api-key", envvar="UNICITY_HAPROXY_API_KEY",
                     help="Bearer key of the registration API (prefer --haproxy-api-key-file or the UNICITY_HAPROXY_API_KEY variable; flags end up in shell history)."),
        click.option("--haproxy-api-key-file",
                     help="File holding the bearer key of the registration API."),
        click.option("--no-haproxy", is_flag=True, help="Do not register with an edge (direct mode)."),
        click.option("--acme-server", metavar="URL", help="ACME directory URL; default: what the edge advertises, else Let's Encrypt."),
        click.option("--acme-ca-bundle", help="CA bundle that verifies the ACME server's own TLS."),
        click.option("--container-name", help="Name of the container.  [default: unicity-SERVICE]"),
        click.option("--image", help="Wrapper image to run.  [default: unicity-infra/SERVICE:VERSION]"),
        click.option("--publish", metavar="[HOST:]PORT",
                     help="Publish the service on this host address (443 inside with TLS, else 80); HOST defaults to 127.0.0.1."),
        click.option("--timeout", "timeout_s", type=float, default=180.0, show_default=True,
                     help="Seconds to wait for the container to become healthy."),
        click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout; no progress output."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("service", type=click.Choice(SERVICES))
@_run_options
@click.option("--network-id", metavar="ID", help="Aggregator only: BFT network id of a new genesis.  [default: 3]")
@click.option("--image-override", "image_overrides", multiple=True, metavar="KEY=IMAGE",
              envvar=IMAGE_OVERRIDES_ENV,
              help="Aggregator only: run IMAGE for KEY (bft-core, mongo, aggregator-go, curl, genesis-tools, "
                   "aggregator-proxy); repeatable, or space-separated in UNICITY_INFRA_IMAGE_OVERRIDES. A flag replaces the "
                   "variable's entry for its KEY only.")
@click.option("--fresh", is_flag=True,
              help="Aggregator only: remove the genesis and MongoDB volumes first, so a new chain starts. Asks first.")
@click.option("--yes", is_flag=True, help="Remove the volumes --fresh names without asking; required without a terminal.")
@pass_context
def run(context: Context, service: str, haproxy_api_key: str | None, timeout_s: float, json_output: bool,
        network_id: str | None, image_overrides: tuple[str, ...], fresh: bool, yes: bool, **options: object) -> None:
    """Start one SERVICE container (the aggregator: its whole stack), wait until it is healthy, then probe it.

    The aggregator counts as ready once /health reports ok with the database
    connected and the block height advances. Without an edge routing a domain
    to it, its proxy is published on 127.0.0.1:3000 unless --publish gives another address.

    \b
    Examples:
      unicity-infra run relay --no-haproxy --ssl-test-mode --domain relay.localhost --publish 7443
      unicity-infra run relay --domain relay.example.org --ssl-email ops@example.org
      unicity-infra run aggregator --no-haproxy
      unicity-infra run aggregator --domain aggregator.example.org --ssl-email ops@example.org
    """
    timeout_s = parse_timeout(timeout_s)
    aggregator = _aggregator_settings(service, options, network_id=network_id, image_overrides=image_overrides,
                                      fresh=fresh)
    options["container_name"] = options["container_name"] or default_container_name(
        context.stack, service_wrapper(service)
    )
    if haproxy_api_key and not options["haproxy_api_key_file"]:
        options["haproxy_api_key_file"] = str(_store_secret(f"{options['container_name']}-haproxy-api-key", haproxy_api_key))
    settings = replace(build_run_settings(service, **options), aggregator=aggregator)  # type: ignore[arg-type]
    if fresh:
        from unicity_infra.commands.aggregator import chain_state_volumes

        _require_terminal_or_yes("--fresh", yes=yes)
        _confirm_wipe(context, chain_state_volumes(context.engine(), stack=context.stack), flag="--fresh", yes=yes)
    progress = context.progress(json_output=json_output)

    from unicity_infra.commands.run import run_service

    try:
        result = run_service(context.engine(), settings, stack=context.stack, timeout_s=timeout_s, progress=progress)
    finally:
        if isinstance(progress, TerminalProgress):
            progress.close()

    if json_output:
        context.out.print_json(json.dumps(result.to_json()))
    else:
        context.err.print(result.render_text(colour=is_interactive(sys.stderr)))
    if not result.ok:
        raise SystemExit(1)


def image_override_items(values: tuple[str, ...]) -> tuple[str, ...]:
    """Return the KEY=IMAGE items of --image-override VALUES, merged per key with UNICITY_INFRA_IMAGE_OVERRIDES.

    click lets flags replace the variable as a whole. Here a key given on the
    command line replaces only the variable's entry for that key, so one flag
    after 'eval "$(bash scripts/standin-images.sh)"' keeps the other stand-ins.
    """
    items = tuple(item for value in values for item in value.split())
    if click.get_current_context().get_parameter_source("image_overrides") is not ParameterSource.COMMANDLINE:
        return items
    typed = {item.partition("=")[0] for item in items}
    inherited = tuple(item for item in os.environ.get(IMAGE_OVERRIDES_ENV, "").split()
                      if item.partition("=")[0] not in typed)
    return inherited + items


def _aggregator_settings(service: str, options: dict[str, object], *, network_id: str | None,
                         image_overrides: tuple[str, ...], fresh: bool):  # noqa: ANN202 - AggregatorSettings | None
    """Validate the aggregator-only options; reject them for other services."""
    from unicity_infra.settings import build_aggregator_settings

    if service != "aggregator":
        if click.get_current_context().get_parameter_source("image_overrides") is not ParameterSource.COMMANDLINE:
            # UNICITY_INFRA_IMAGE_OVERRIDES (or the settings file) serves the whole stack; only a typed flag is a mistake.
            image_overrides = ()
        for flag, given in (("--network-id", network_id), ("--image-override", image_overrides), ("--fresh", fresh)):
            if given:
                raise SettingsError(flag, True, f"it applies only to 'run aggregator', not to 'run {service}'")
        return None
    if options["container_name"]:
        raise SettingsError("--container-name", options["container_name"],
                            "the aggregator stack names its containers after the stack; choose another --stack")
    aggregator = build_aggregator_settings(network_id=network_id, image_overrides=image_override_items(image_overrides),
                                           fresh=fresh)
    if options["image"] and "aggregator-proxy" in aggregator.image_overrides:
        raise SettingsError("--image", options["image"], "--image-override aggregator-proxy=... sets it too; drop one of them")
    return aggregator


def _confirm_wipe(context: Context, volumes: dict[str, list[str]], *, flag: str, yes: bool) -> None:
    """List the chain-state VOLUMES that FLAG removes and ask before going on, unless YES.

    Raises SettingsError (exit 2) without a terminal to ask on, and InfraError
    when the user declines; nothing is removed in either case.
    """
    names = [f"{name} ({role})" for role, found in volumes.items() for name in found]
    if names:
        context.err.print(f"{flag} removes these volumes of stack {context.stack!r}: " + ", ".join(names), markup=False)
        context.err.print("Wallets and the faucet then need the new trust base; tokens of the old chain "
                          "cannot be verified any more.", markup=False)
    _require_terminal_or_yes(flag, yes=yes)
    if not yes and names and not click.confirm("Remove them?", default=False, err=True):
        raise InfraError(f"nothing removed: {flag} was not confirmed")


def _require_terminal_or_yes(flag: str, *, yes: bool) -> None:
    """Raise SettingsError when FLAG would need a confirmation but there is no terminal to ask on."""
    if not yes and not sys.stdin.isatty():
        raise SettingsError(flag, True, "it removes the aggregator's genesis and MongoDB volumes and there is no "
                                        "terminal to confirm on; add --yes to confirm")


def _store_secret(name: str, value: str) -> Path:
    """Write VALUE to a file only this user can read and return its path."""
    directory = state_dir() / "secrets"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    return path


# status, down, logs --------------------------------------------------------------


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@pass_context
def status(context: Context, json_output: bool) -> None:
    """Show our containers (service, state, health, endpoint, certificate days left) and the aggregator genesis."""
    from unicity_infra.commands.status import collect_genesis, collect_status

    engine = context.engine()
    rows = collect_status(engine, stack=context.stack)
    genesis = collect_genesis(engine, stack=context.stack)
    if json_output:
        context.out.print_json(json.dumps({"stack": context.stack, "containers": rows, "aggregator_genesis": genesis}))
        return
    if not rows:
        context.out.print(f"no containers of stack {context.stack!r}; start one with 'unicity-infra run relay'")
        return
    table = Table(title=f"stack {context.stack}", show_lines=False)
    for column in ("service", "container", "state", "health", "endpoint", "cert days left"):
        table.add_column(column, overflow="fold")
    for row in rows:
        days = row["certificate_days_left"]
        state = row["state"] if row["exit_code"] is None else f"{row['state']} ({row['exit_code']})"
        table.add_row(row["service"], row["container"], state, row["health"] or "-",
                      row["endpoint"] or "-", "-" if days is None else str(days))
    context.out.print(table)
    if genesis:
        context.out.print(f"aggregator genesis: created {genesis['createdAt']}, networkId {genesis['networkId']}, "
                          f"epoch {genesis['epoch']}, trust base sha256 {genesis['sha256']}", markup=False)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
@click.option("--wipe", is_flag=True,
              help="Also remove the data volumes (relay events, identities, the aggregator's MongoDB and genesis). "
                   "Certificates are kept.")
@click.option("--wipe-certificates", is_flag=True,
              help="Also remove the certificate volumes; the next start asks the CA again (mind Let's Encrypt rate limits).")
@click.option("--yes", is_flag=True,
              help="Remove an aggregator genesis without asking; required for that without a terminal.")
@click.option("--json", "json_output", is_flag=True, help="Print what was removed as one JSON document.")
@pass_context
def down(context: Context, services: tuple[str, ...], wipe: bool, wipe_certificates: bool, yes: bool,
         json_output: bool) -> None:
    """Stop and remove our containers (all services, or the SERVICES named).

    Volumes are kept unless --wipe or --wipe-certificates is given. --wipe
    removes the aggregator's genesis and MongoDB together, after asking (or
    with --yes). Running it again when nothing is left is harmless.
    """
    from unicity_infra.commands.down import GENESIS_ROLE, plan_wipe, take_down

    if wipe:
        planned = plan_wipe(context.engine(), stack=context.stack, services=list(services), wipe=True,
                            wipe_certificates=False)
        if planned.get(GENESIS_ROLE):
            _confirm_wipe(context, planned, flag="--wipe", yes=yes)
    progress = context.progress(json_output=json_output)
    removed = take_down(context.engine(), stack=context.stack, services=list(services),
                        wipe=wipe, wipe_certificates=wipe_certificates, progress=progress)
    _print_removed(context, removed, json_output=json_output)
    if wipe and not wipe_certificates and not json_output:
        certificate_volumes = plan_wipe(context.engine(), stack=context.stack, services=list(services), wipe=False,
                                        wipe_certificates=True).get("certificates", [])
        if certificate_volumes:
            context.err.print(f"kept {len(certificate_volumes)} certificate volume(s): {', '.join(certificate_volumes)}; "
                              "add --wipe-certificates to remove them too", markup=False)


def _print_removed(context: Context, removed: dict[str, list[str]], *, json_output: bool) -> None:
    if json_output:
        context.out.print_json(json.dumps(removed))
    elif not any(removed.values()):
        context.err.print(f"nothing to remove in stack {context.stack!r}")
    else:
        for kind, names in removed.items():
            for name in names:
                context.err.print(f"removed {kind[:-1]} {name}")


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("service_or_container")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("--tail", default="all", show_default=True, help="Number of lines from the end to show, or 'all'.")
@pass_context
def logs(context: Context, service_or_container: str, follow: bool, tail: str) -> None:
    """Print the logs of a service (by name, e.g. relay) or of one of our containers."""
    engine = context.engine()
    containers = engine.list_containers(stack=context.stack, service=service_or_container)
    name = containers[0].name if containers else service_or_container
    if tail != "all" and not tail.isdigit():
        raise SettingsError("--tail", tail, "expected a number of lines or 'all'")
    for chunk in engine.stream_logs(name, tail=int(tail) if tail.isdigit() else "all", follow=follow):
        sys.stdout.write(chunk)
        sys.stdout.flush()


# probe: commands/probe_cli.py ------------------------------------------------------


def _print_reports(context: Context, reports: list, *, json_output: bool) -> None:  # noqa: ANN001
    """Print probe REPORTS; raise ProbeFailedError (exit 1) when any check failed."""
    from unicity_infra.probes.report import render_json, render_text

    if json_output:
        context.out.print(render_json(reports), markup=False, highlight=False)
    else:
        context.out.print(render_text(reports, colour=is_interactive(sys.stdout)))
    failed = [report.target for report in reports if not report.ok]
    if failed:
        raise ProbeFailedError(f"checks failed for {', '.join(failed)}")


# trust base ----------------------------------------------------------------------------


@cli.group("trust-base", epilog=EXIT_CODES_HELP)
def trust_base_group() -> None:
    """Check a BFT trust-base.json, or export the one of the stack's aggregator genesis."""


@trust_base_group.command("check", epilog=EXIT_CODES_HELP)
@click.argument("file")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@pass_context
def trust_base_check(context: Context, file: str, json_output: bool) -> None:
    """Validate every field of FILE and print its network id, epoch, root nodes and SHA-256."""
    from unicity_infra.probes.trust_base import (
        decode_trust_base_document,
        trust_base_sha256,
        validate_trust_base,
    )
    from unicity_infra.settings import parse_readable_file

    path = parse_readable_file(file, option="FILE")
    data = path.read_bytes()
    document = decode_trust_base_document(data)
    problems = validate_trust_base(document)
    summary = {
        "file": str(path), "ok": not problems, "problems": problems, "sha256": trust_base_sha256(data),
        "networkId": document.get("networkId"), "epoch": document.get("epoch"),
        "rootNodes": len(document.get("rootNodes") or []),
    }
    if json_output:
        context.out.print(json.dumps(summary, indent=2), markup=False, highlight=False)
    else:
        for problem in problems:
            context.out.print(f"✗ {problem}", markup=False)
        context.out.print(f"networkId {summary['networkId']}, epoch {summary['epoch']}, "
                          f"{summary['rootNodes']} root node(s), sha256 {summary['sha256']}", markup=False)
    if problems:
        raise ProbeFailedError(f"{path}: {len(problems)} invalid field(s)")


# edge -----------------------------------------------------------------------------------


@cli.group(epilog=EXIT_CODES_HELP)
def edge() -> None:
    """Run a local edge: HAProxy with the /v1/backends registration API and Pebble as ACME CA.

    It joins the Docker network haproxy-net under the alias haproxy with the API
    on port 8404, the production defaults, so 'run' needs no edge flags.
    """


@edge.command("up", epilog=EXIT_CODES_HELP)
@click.option("--publish-address", default="127.0.0.1", show_default=True,
              help="Host address the edge's ports are published on.")
@click.option("--http-port", default="80", show_default=True, help="Host port of HAProxy's HTTP frontend (routed by Host).")
@click.option("--https-port", default="443", show_default=True,
              help="Host port of HAProxy's TLS passthrough frontend (routed by SNI).")
@click.option("--api-port", default="8404", show_default=True, help="Host port of the registration API.")
@click.option("--network", default=DEFAULT_HAPROXY_NET, show_default=True, help="Docker network shared with the services.")
@click.option("--alias", default=DEFAULT_HAPROXY_HOST, show_default=True, help="Network alias of the edge on that network.")
@click.option("--api-key-file", help="Require this bearer key (a file holding it) on every API call.")
@click.option("--require-key", is_flag=True,
              help="Require a bearer key, generated once into the edge's state directory; 'edge status' names the file.")
@click.option("--image", help="Edge image to run.  [default: unicity-infra/edge:VERSION]")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout; no progress output.")
@pass_context
def edge_up_command(context: Context, publish_address: str, http_port: str, https_port: str, api_port: str,
                    network: str, alias: str, api_key_file: str | None, require_key: bool, image: str | None,
                    json_output: bool) -> None:
    """Start the local edge (replacing ours if it runs) and wait until its API responds."""
    from unicity_infra.commands.edge import edge_up, generate_api_key
    from unicity_infra.settings import (
        parse_domain_or_host,
        parse_image_ref,
        parse_ip_address,
        parse_network_name,
        parse_port,
        parse_readable_file,
        wrapper_image,
    )
    from unicity_infra.stack.edge import EdgeSettings

    if api_key_file and require_key:
        raise SettingsError("--require-key", True, "it cannot be combined with --api-key-file; drop one of them")
    settings = EdgeSettings(
        network=parse_network_name(network, option="--network"),
        alias=parse_domain_or_host(alias, option="--alias"),
        publish_host=parse_ip_address(publish_address, option="--publish-address"),
        http_port=parse_port(http_port, option="--http-port"),
        https_port=parse_port(https_port, option="--https-port"),
        api_port=parse_port(api_port, option="--api-port"),
        image=parse_image_ref(image) if image else wrapper_image("edge"),
        api_key_file=parse_readable_file(api_key_file, option="--api-key-file") if api_key_file else None,
    )
    if require_key:
        settings = replace(settings, api_key_file=generate_api_key(context.stack))

    progress = context.progress(json_output=json_output)
    try:
        status = edge_up(context.engine(), settings, stack=context.stack, progress=progress)
    finally:
        if isinstance(progress, TerminalProgress):
            progress.close()
    _print_edge_status(context, status, json_output=json_output)


@edge.command("status", epilog=EXIT_CODES_HELP)
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--show-key", is_flag=True, help="Also print the API key itself (it is otherwise only in its file).")
@pass_context
def edge_status_command(context: Context, json_output: bool, show_key: bool) -> None:
    """Show the edge: state, API URL, ACME directory, the CA bundle clients must trust, key file."""
    from unicity_infra.commands.edge import edge_status

    status = edge_status(context.engine(), stack=context.stack)
    if status is None:
        raise InfraError(f"no local edge runs in stack {context.stack!r}; start one with 'unicity-infra edge up'")
    _print_edge_status(context, status, json_output=json_output, show_key=show_key)


@edge.command("down", epilog=EXIT_CODES_HELP)
@click.option("--wipe", is_flag=True, help="Also remove the edge's state: registrations and the CA roots it issued from.")
@click.option("--json", "json_output", is_flag=True, help="Print what was removed as one JSON document.")
@pass_context
def edge_down_command(context: Context, wipe: bool, json_output: bool) -> None:
    """Stop and remove the local edge; the shared network goes too once no container uses it."""
    from unicity_infra.commands.edge import edge_down

    removed = edge_down(context.engine(), stack=context.stack, wipe=wipe,
                        progress=context.progress(json_output=json_output))
    _print_removed(context, removed, json_output=json_output)


def _print_edge_status(context: Context, status, *, json_output: bool, show_key: bool = False) -> None:  # noqa: ANN001
    document = status.to_json()
    if show_key and status.key_file:
        document["key"] = Path(status.key_file).read_text().strip()
    if json_output:
        context.out.print_json(json.dumps(document))
        return
    for key, value in document.items():
        context.out.print(f"{key:15} {_plain_value(value)}", markup=False)


def _plain_value(value: object) -> object:
    """Return VALUE as a plain-text row shows it: '-' for none, yes/no for flags."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


# images: commands/images_cli.py -----------------------------------------------------


# entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn our errors into a message on stderr and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    err = make_console(stderr=True)
    try:
        cli.main(args=argv, prog_name="unicity-infra", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("interrupted", markup=False)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        raise SystemExit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code) from None
    except InfraError as exc:
        if debug:
            logger.exception("command failed")
        _print_error(err, str(exc))
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last-resort boundary of the CLI
        if debug:
            raise
        _print_error(err, f"unexpected error: {exc.__class__.__name__}: {exc}; rerun with --debug for the traceback")
        raise SystemExit(1) from None


def _print_error(console, message: str) -> None:  # noqa: ANN001
    if console.no_color:
        console.print(f"error: {message}", markup=False)
    else:
        console.print("[red]error:[/red] ", end="")
        console.print(message, markup=False)



def _register_command_modules() -> None:
    """Add the command groups that live in their own modules (``commands/*_cli.py``)."""
    import importlib
    import pkgutil

    from unicity_infra import commands

    for module_info in pkgutil.iter_modules(commands.__path__):
        if module_info.name.endswith("_cli"):
            module = importlib.import_module(f"unicity_infra.commands.{module_info.name}")
            module.register(cli)


_register_command_modules()
