"""CLI of the aggregator's trust base: ``trust-base export``, added to the ``trust-base`` group of cli.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["register"]

EXIT_CODES_HELP = "Exit codes: 0 success, 1 an operation or check failed, 2 invalid usage or settings, 130 interrupted."


@click.command("export", epilog=EXIT_CODES_HELP)
@click.option("--out", "out_file", metavar="FILE",
              help="Write the trust base to FILE (replaced atomically); without it, to standard output.")
@click.option("--json", "json_output", is_flag=True,
              help="Print network id, epoch, SHA-256 and source as one JSON document on stdout (needs --out).")
@click.pass_obj
def trust_base_export(context, out_file: str | None, json_output: bool) -> None:  # noqa: ANN001 - cli.Context
    """Write the trust base of the stack's aggregator genesis and print its network id, epoch and SHA-256.

    The file is read from the genesis volume through one of the stack's
    containers (stopped ones too), byte for byte as the aggregator and its
    proxy use it. Wallets verify inclusion proofs against it.

    \b
    Examples:
      unicity-infra trust-base export --out trust-base.json
      unicity-infra --stack e2e trust-base export > trust-base.json
    """
    from unicity_infra.commands.aggregator import read_genesis_trust_base, save_trust_base
    from unicity_infra.errors import SettingsError

    if json_output and not out_file:
        raise SettingsError("--json", True, "the trust base itself goes to standard output without --out; add --out FILE")
    trust_base = read_genesis_trust_base(context.engine(), stack=context.stack)
    summary = trust_base.summary()
    line = (f"networkId {summary['networkId']}, epoch {summary['epoch']}, {summary['rootNodes']} root node(s), "
            f"sha256 {summary['sha256']}, created {summary['createdAt']}")

    if out_file is None:
        sys.stdout.buffer.write(trust_base.data)
        sys.stdout.flush()
        context.err.print(line, markup=False)
        return

    path = save_trust_base(trust_base, Path(out_file).expanduser())
    if json_output:
        context.out.print_json(json.dumps({**summary, "file": str(path.resolve())}))
    else:
        context.out.print(f"wrote {path}: {line}", markup=False)


def register(cli: click.Group) -> None:
    """Add ``export`` to the ``trust-base`` group that cli.py defines."""
    group = cli.commands["trust-base"]
    assert isinstance(group, click.Group)
    group.add_command(trust_base_export)
