"""`snapsync copy`: Data Copy between accounts (request, list, approve, decline, undo)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, out, settings

app = typer.Typer(help="Data Copy: a one-time copy of setup data into a customer of another account, approved by "
                       "that account.", no_args_is_help=True)

WaitOpt = Annotated[float, typer.Option("--wait", help="Seconds to wait for the worker (`snapsync worker`) to make "
                                        "the copy or undo; 0: only queue it.", min=0)]


def _wait(config, task_id: int, wait: float):
    from snapsync.control.sync_tasks import wait_for

    return wait_for(settings(config), [task_id], wait)[0]


@app.command("request")
def copy_request(
    from_customer: Annotated[int, typer.Option("--from-customer", help="The customer to copy from (its account requests).", min=1)],
    to_account: Annotated[int, typer.Option("--to-account", help="The receiving account.", min=1)],
    to_customer: Annotated[int, typer.Option("--to-customer", help="The receiving account's customer (it may pick another when it approves).", min=1)],
    data: Annotated[str, typer.Option("--data", help="codes, facilities, referring-providers, payers (comma-separated).")],
    mode: Annotated[str, typer.Option(help="create-only (default: never modify existing items) or override.")] = "create-only",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Request a one-time Data Copy; the receiving account's Auth Reps see it in Messages."""
    from pydantic import ValidationError

    from snapsync.connectors.mysql import connect
    from snapsync.control import data_copy
    from snapsync.control.accounts import account_of
    from snapsync.control.sync_groups import parse_categories
    from snapsync.schemas.control import DataCopyRequest
    from snapsync.schemas.errors import config_error

    s = settings(config)
    try:
        req = DataCopyRequest(source_customer=from_customer, to_account=to_account, to_customer=to_customer,
                              categories=parse_categories(data), mode=mode)
    except ValidationError as exc:
        raise config_error(exc, "invalid Data Copy request:", fixes={"mode": "use create-only or override"}) from None
    with connect(s.db) as practice:
        account = account_of(practice, from_customer, what="Data Copy request")
    copy = data_copy.request(s, account, req, tenant_view=False)
    view = data_copy.copy_view(s, None, copy.copy_id)
    print(json.dumps(view)) if json_ else out.print(
        f"Data Copy {copy.copy_id} requested: account {account} customer {from_customer} -> account {to_account} "
        f"customer {to_customer} ({', '.join(view['categories'])}, {mode}); waiting for account {to_account} to "
        "approve it (`snapsync copy approve`)", highlight=False, markup=False)


@app.command("list")
def copy_list(account: Annotated[Optional[int], typer.Option(help="Only the copies this account sent or received (as it sees them).", min=1)] = None,
              config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List Data Copies and their state (requested, approved, declined, done, failed, undone, expired)."""
    from snapsync.control import data_copy

    found = data_copy.account_copies(settings(config), account)
    if json_:
        print(json.dumps(found))
        return
    for title, rows in found.items():
        if account is not None:
            out.print(f"{title}:", highlight=False)
        for c in rows:
            target = f"customer {c['target_customer']}" if c["target_customer"] else f"customer {c['to_customer']} (asked)"
            out.print(f"  copy {c['copy_id']}: account {c['from_account']} customer {c['source_customer']} -> account "
                      f"{c['to_account']} {target} {','.join(c['categories'])} [{c['mode']}]: {c['status']}",
                      highlight=False, markup=False)


@app.command("approve")
def copy_approve(
    copy_id: Annotated[int, typer.Argument(help="The copy's id (`snapsync copy list`).")],
    target_customer: Annotated[Optional[int], typer.Option("--target-customer", help="The receiving account's customer (default: the one asked for).", min=1)] = None,
    wait: WaitOpt = 120.0,
    config: ConfigOpt = None,
) -> None:
    """Approve a requested Data Copy as the receiving account: the worker makes it (waited for, --wait)."""
    from snapsync.control import data_copy
    from snapsync.schemas.errors import ConfigError

    copy, task_id = data_copy.approve(settings(config), None, copy_id, target_customer)
    task = _wait(config, task_id, wait)
    if task.state == "failed":
        raise ConfigError(task.error or "the copy failed")
    if task.state != "done":
        out.print(f"Data Copy {copy_id} approved; queued as task {task_id}: the worker (`snapsync worker`) makes it",
                  highlight=False)
        return
    r = task.result
    out.print(f"Data Copy {copy_id} made into customer {copy.target_customer}: {r['created']} item(s) created, "
              f"{r['overridden']} overridden", highlight=False)


@app.command("decline")
def copy_decline(copy_id: Annotated[int, typer.Argument(help="The copy's id.")], config: ConfigOpt = None) -> None:
    """Decline a requested Data Copy as the receiving account (the requester is told)."""
    from snapsync.control import data_copy

    data_copy.decline(settings(config), None, copy_id)
    out.print(f"Data Copy {copy_id} declined", highlight=False)


@app.command("undo")
def copy_undo(copy_id: Annotated[int, typer.Argument(help="The copy's id.")],
              force: Annotated[bool, typer.Option("--force", help="Undo even when items changed after the copy (their later changes are lost).")] = False,
              wait: WaitOpt = 120.0, config: ConfigOpt = None) -> None:
    """Undo a Data Copy that was made: restore what it overrode, remove what it created (the
    worker makes it). Refused, naming the items, when they changed since, unless --force."""
    from snapsync.control import data_copy
    from snapsync.schemas.errors import ConfigError

    task_id = data_copy.request_undo(settings(config), None, copy_id, force=force)
    task = _wait(config, task_id, wait)
    if task.state == "failed":
        raise ConfigError(task.error or "the undo failed")
    if task.state != "done":
        out.print(f"undo queued as task {task_id}: the worker (`snapsync worker`) makes it", highlight=False)
        return
    out.print(f"Data Copy {copy_id} undone: {task.result['rows']} row(s) restored or removed", highlight=False)
