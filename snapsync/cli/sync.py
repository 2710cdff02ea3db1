"""`snapsync sync`: Data Sync groups and the service per account."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, customer_list, out, settings
from snapsync.control import data_sync, sync_groups
from snapsync.control import sync_undo as sync_undo_module

app = typer.Typer(help="Data Sync: groups of a sync-from customer and its sync-to customers.", no_args_is_help=True)

def _targets(text: str) -> tuple[int, ...]:
    return tuple(customer_list(text))


@app.command("add")
def sync_add(
    from_: Annotated[int, typer.Option("--from", help="The sync-from customer.")],
    to: Annotated[str, typer.Option("--to", help="Sync-to customers, comma-separated.")],
    data: Annotated[str, typer.Option("--data", help="codes, facilities, referring-providers, payers (comma-separated).")],
    mode: Annotated[str, typer.Option(help="create-only (default: never modify existing items) or override.")] = "create-only",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add a sync group; when the account's Data Sync is enabled, copy the current items now."""
    g, copied = data_sync.create_group(settings(config), from_, _targets(to), sync_groups.parse_categories(data),
                                       mode)
    result = {**sync_groups.group_view(g), "initial_copy": copied}
    print(json.dumps(result)) if json_ else out.print(
        f"sync group {g.group_id}: customer {g.source_customer} -> {list(g.targets)} ({mode})"
        + ("" if copied else " (Data Sync is disabled for the account: `snapsync sync enable`)"))


@app.command("edit")
def sync_edit(
    group: Annotated[int, typer.Argument(help="Group id (`snapsync sync list`).")],
    to: Annotated[Optional[str], typer.Option("--to", help="The new list of sync-to customers.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="The new list of categories.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="create-only or override.")] = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Change a group's targets, categories or mode; newly added targets get the initial copy."""
    before, after, copied = data_sync.change_group(
        settings(config), group, targets=None if to is None else _targets(to),
        categories=None if data is None else sync_groups.parse_categories(data), mode=mode)
    added = [t for t in after.targets if t not in before.targets]
    print(json.dumps({**sync_groups.group_view(after), "initial_copy": copied})) if json_ else out.print(
        f"sync group {group} updated; new targets copied: {added}")


@app.command("delete")
def sync_delete(group: Annotated[int, typer.Argument(help="Group id.")], config: ConfigOpt = None) -> None:
    """Delete a sync group (items already copied stay)."""
    sync_groups.delete_group(settings(config), group)
    out.print(f"sync group {group} deleted")


@app.command("list")
def sync_list(account: Annotated[Optional[int], typer.Option(help="Only this account.")] = None,
              config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List the sync groups and whether each account's Data Sync is enabled."""
    rows = sync_groups.list_groups(settings(config), account)
    if json_:
        print(json.dumps(rows))
        return
    for r in rows:
        out.print(f"group {r['group_id']} (account {r['account_id']}{'' if r['service_enabled'] else ', disabled'}): "
                  f"{r['source_customer']} -> {r['targets']} {','.join(r['categories'])} [{r['mode']}]")


@app.command("enable")
def sync_enable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Enable Data Sync for an account (copies every group's current items)."""
    groups = data_sync.enable_service(settings(config), account)
    out.print(f"Data Sync enabled for account {account} ({len(groups)} group(s) copied)")


@app.command("disable")
def sync_disable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Disable Data Sync for an account (groups are kept)."""
    sync_groups.set_service(settings(config), account, False)
    out.print(f"Data Sync disabled for account {account}")


@app.command("undo")
def sync_undo(audit_id: Annotated[int, typer.Argument(help="Audit id of a sync application (`snapsync audit --entity sync_apply`).")],
              force: Annotated[bool, typer.Option("--force", help="Undo even when items changed after the application (their later changes are lost).")] = False,
              config: ConfigOpt = None) -> None:
    """Restore what one sync application overwrote (and remove what it created).

    Refused when an item changed after that application, naming the rows and columns,
    unless --force."""
    n = sync_undo_module.undo_application(settings(config), audit_id, force=force)
    out.print(f"undone: {n} row(s) restored from audit record {audit_id}")
