"""`snapsync sync`: Data Sync groups and the service per account."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, customer_list, lazy, out, settings

data_sync = lazy("snapsync.control.data_sync")
sync_groups = lazy("snapsync.control.sync_groups")
sync_undo_module = lazy("snapsync.control.sync_undo")

app = typer.Typer(help="Data Sync: groups of a sync-from customer and its sync-to customers.", no_args_is_help=True)

WaitOpt = Annotated[float, typer.Option("--wait", help="Seconds to wait for the worker (`snapsync worker`) to make "
                                        "the copy or undo; 0: only queue it.", min=0)]


def _wait(config, task_ids: list[int], wait: float) -> list:
    from snapsync.control import sync_tasks

    return sync_tasks.wait_for(settings(config), task_ids, wait) if task_ids else []


def _told(tasks) -> str:
    """What the requester is told of queued copies."""
    if not tasks:
        return ""
    done = [t for t in tasks if t.state == "done"]
    if len(done) == len(tasks):
        made = sum(c["created"] + c["overridden"] for t in done for c in t.result["tables"].values())
        return f"; initial copy made ({made} item(s) created or overridden)"
    failed = [t for t in tasks if t.state == "failed"]
    if failed:
        return f"; initial copy failed (task {failed[0].task_id}): {failed[0].error}"
    return (f"; initial copy queued as task(s) {', '.join(str(t.task_id) for t in tasks)}: the worker (`snapsync "
            "worker`) makes it; `snapsync sync tasks` shows the outcome")

def _targets(text: str) -> tuple[int, ...]:
    return tuple(customer_list(text))


@app.command("add")
def sync_add(
    from_: Annotated[int, typer.Option("--from", help="The sync-from customer.")],
    to: Annotated[str, typer.Option("--to", help="Sync-to customers, comma-separated.")],
    data: Annotated[str, typer.Option("--data", help="codes, facilities, referring-providers, payers (comma-separated).")],
    mode: Annotated[str, typer.Option(help="create-only (default: never modify existing items) or override.")] = "create-only",
    wait: WaitOpt = 120.0,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add a sync group; when the account's Data Sync is enabled, its initial copy is queued for
    the worker (and waited for, --wait)."""
    from snapsync.control.sync_tasks import summary

    g, queued = data_sync.create_group(settings(config), from_, _targets(to), sync_groups.parse_categories(data),
                                       mode)
    tasks = _wait(config, list(queued.values()), wait)
    result = {**sync_groups.group_view(g), "initial_copy": summary(tasks)}
    print(json.dumps(result)) if json_ else out.print(
        f"sync group {g.group_id}: customer {g.source_customer} -> {list(g.targets)} ({mode})"
        + (_told(tasks) if queued else " (Data Sync is disabled for the account: `snapsync sync enable`)"))


@app.command("edit")
def sync_edit(
    group: Annotated[int, typer.Argument(help="Group id (`snapsync sync list`).")],
    to: Annotated[Optional[str], typer.Option("--to", help="The new list of sync-to customers.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="The new list of categories.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="create-only or override.")] = None,
    wait: WaitOpt = 120.0,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Change a group's targets, categories or mode; newly added targets get the initial copy
    (queued for the worker, and waited for)."""
    from snapsync.control.sync_tasks import summary

    before, after, queued = data_sync.change_group(
        settings(config), group, targets=None if to is None else _targets(to),
        categories=None if data is None else sync_groups.parse_categories(data), mode=mode)
    tasks = _wait(config, list(queued.values()), wait)
    added = [t for t in after.targets if t not in before.targets]
    print(json.dumps({**sync_groups.group_view(after), "initial_copy": summary(tasks)})) if json_ else out.print(
        f"sync group {group} updated; new targets: {added}{_told(tasks)}")


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
    """Enable Data Sync for an account (every group's current items are copied by the worker)."""
    groups = data_sync.enable_service(settings(config), account)
    out.print(f"Data Sync enabled for account {account} ({len(groups)} group(s): their initial copies are queued "
              "for the worker)")


@app.command("disable")
def sync_disable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Disable Data Sync for an account (groups are kept)."""
    sync_groups.set_service(settings(config), account, False)
    out.print(f"Data Sync disabled for account {account}")


@app.command("undo")
def sync_undo(audit_id: Annotated[int, typer.Argument(help="Audit id of a sync application (`snapsync audit --entity sync_apply`).")],
              force: Annotated[bool, typer.Option("--force", help="Undo even when items changed after the application (their later changes are lost).")] = False,
              wait: WaitOpt = 120.0,
              config: ConfigOpt = None) -> None:
    """Restore what one sync application overwrote (and remove what it created); the worker
    makes it (waited for, --wait).

    Refused when an item changed after that application, naming the rows and columns,
    unless --force."""
    from snapsync.schemas.errors import ConfigError

    task_id = sync_undo_module.request_undo(settings(config), audit_id, force=force)
    tasks = _wait(config, [task_id], wait)
    task = tasks[0]
    if task.state == "failed":
        raise ConfigError(task.error or "the undo failed")
    if task.state != "done":
        out.print(f"undo queued as task {task_id}: the worker (`snapsync worker`) makes it; `snapsync sync tasks` "
                  "shows the outcome")
        return
    out.print(f"undone: {task.result['rows']} row(s) restored from audit record {audit_id}")


@app.command("tasks")
def sync_tasks_list(account: Annotated[Optional[int], typer.Option(help="Only this account.")] = None,
                    config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """The newest Data Sync copies and undos asked for (and Data Copies), and their outcome."""
    from snapsync.connectors.state import connect_state
    from snapsync.control.sync_tasks import recent

    with connect_state(settings(config)) as conn:
        tasks = recent(conn, account)
    if json_:
        print(json.dumps([t.view() for t in tasks]))
        return
    for t in tasks:
        what = {"copy": lambda p: f"copy {p['source']} -> {p['target']} ({p['mode']})",
                "undo": lambda p: f"undo of audit record {p['audit_id']}",
                "data_copy": lambda p: f"Data Copy {p['copy_id']}",
                "copy_undo": lambda p: f"undo of Data Copy {p['copy_id']}"}[t.kind](t.payload)
        out.print(f"task {t.task_id} (account {t.account_id}): {what}: {t.state}"
                  + (f" - {t.error}" if t.error else ""))
