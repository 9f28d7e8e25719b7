"""CLI of ``snapshot save|restore|list``."""

from __future__ import annotations

import json

import click

__all__ = ["register"]


def register(cli: click.Group) -> None:
    from unicity_infra.cli import EXIT_CODES_HELP, Context, pass_context

    @cli.group(epilog=EXIT_CODES_HELP)
    def snapshot() -> None:
        """Archive and restore all volumes of a stack while it is down.

        \b
        Example, keeping a chain and its faucet identity across a fresh run:
          unicity-infra down
          unicity-infra snapshot save before-soak
          unicity-infra up --fresh ...
          unicity-infra down
          unicity-infra snapshot restore before-soak
        """

    @snapshot.command("save", epilog=EXIT_CODES_HELP)
    @click.argument("name")
    @click.option("--force", is_flag=True, help="Replace an existing snapshot of that name.")
    @click.option("--json", "json_output", is_flag=True, help="Print the snapshot's manifest as JSON on stdout.")
    @pass_context
    def save(context: Context, name: str, force: bool, json_output: bool) -> None:
        """Archive the stack's data, genesis and certificate volumes as NAME."""
        from unicity_infra.commands.snapshot import parse_snapshot_name, save_snapshot

        saved = save_snapshot(context.engine(), stack=context.stack, name=parse_snapshot_name(name), force=force,
                              progress=context.progress(json_output=json_output))
        if json_output:
            context.out.print_json(json.dumps(saved.to_json()))
        else:
            context.err.print(f"saved snapshot {saved.name} ({len(saved.volumes)} volumes) to {saved.path}",
                              markup=False)

    @snapshot.command("restore", epilog=EXIT_CODES_HELP)
    @click.argument("name")
    @click.option("--json", "json_output", is_flag=True, help="Print the restored snapshot's manifest as JSON.")
    @pass_context
    def restore(context: Context, name: str, json_output: bool) -> None:
        """Replace the stack's volumes with snapshot NAME (the stack must be down)."""
        from unicity_infra.commands.snapshot import parse_snapshot_name, restore_snapshot

        restored = restore_snapshot(context.engine(), stack=context.stack, name=parse_snapshot_name(name),
                                    progress=context.progress(json_output=json_output))
        if json_output:
            context.out.print_json(json.dumps(restored.to_json()))
        else:
            context.err.print(f"restored snapshot {restored.name} ({len(restored.volumes)} volumes); "
                              "start the stack again to use it", markup=False)

    @snapshot.command("list", epilog=EXIT_CODES_HELP)
    @click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
    @pass_context
    def list_command(context: Context, json_output: bool) -> None:
        """List the stack's snapshots."""
        from unicity_infra.commands.snapshot import list_snapshots

        snapshots = list_snapshots(context.stack)
        if json_output:
            context.out.print_json(json.dumps([item.to_json() for item in snapshots]))
            return
        if not snapshots:
            context.out.print(f"no snapshots of stack {context.stack!r}", markup=False)
        for item in snapshots:
            context.out.print(f"{item.name:20} {item.created}  {len(item.volumes)} volumes  {item.path}", markup=False)
