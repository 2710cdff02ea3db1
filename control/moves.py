"""Customers that moved to another account: a stored selection is checked again each time it is
used, and a customer that no longer belongs to the selection's account is dropped from it.

Nothing tells snapsync that a customer changed account: the billing application moves customers
itself (``UPDATE customer SET account_id = ...``), and a selection saved last month was checked
against last month's owners. So every use re-checks, at the moment it runs: a nightly delivery
(:func:`recheck_snapshots`), a sample, a download (:func:`not_owned`), a Data Sync fan-out,
application, initial copy and undo (:func:`recheck_groups`, :func:`check_owned`). A customer found
moved is dropped from the account's snapshot selection and its sync groups, with one audit record
per changed selection and a message to the old account and to the new one; the old account's
packages holding it are no longer served (``snapsync/web/routers/download.py``).

The messages name the customer by its id only: the old account knew it, the new one owns it now,
and neither learns anything of the other (no account is named).
"""

from __future__ import annotations

from collections.abc import Iterable

from snapsync.control.accounts import customer_accounts
from snapsync.control.audit import record_audit
from snapsync.control.notifications import notify
from snapsync.schemas.control import SnapshotSettings, SyncGroup
from snapsync.schemas.errors import ConfigError

#: Who the audit history names for these changes.
ACTOR = "snapsync"
ACTION = "customer-moved"


def not_owned(practice, account_id: int, customers: Iterable[int]) -> dict[int, int | None]:
    """``{customer: its account now (None: gone)}`` for those of ``customers`` that are not
    ``account_id``'s now. ``practice``: a connection to the practice schema."""
    customers = sorted(set(customers))
    owners = customer_accounts(practice, customers)
    practice.commit()
    return {c: owners.get(c) for c in customers if owners.get(c) != account_id}


def not_owned_of(settings, account_id: int, customers: Iterable[int]) -> dict[int, int | None]:
    """:func:`not_owned` on a connection of its own."""
    from snapsync.connectors.mysql import connect

    with connect(settings.db) as practice:
        return not_owned(practice, account_id, customers)


def check_owned(practice, account_id: int, customers: Iterable[int], *, what: str) -> None:
    """Every one of ``customers`` belongs to ``account_id`` now.

    Raises:
        ConfigError: naming the customers that do not, and that ``what`` was not done.
    """
    moved = not_owned(practice, account_id, customers)
    if moved:
        raise ConfigError(f"customer(s) {', '.join(map(str, moved))} no longer belongs to account {account_id}: "
                          f"{what} was not made")


def announce(cur, account_id: int, moved: dict[int, int | None], what: str) -> None:
    """The messages of a drop: to the old account (``account_id``) and to each new owner."""
    for customer, new in sorted(moved.items()):
        notify(cur, account_id=account_id, kind="customer_moved",
               message=f"Customer {customer} no longer belongs to this account: it was removed from {what}. "
                       "Packages already delivered that hold it can no longer be downloaded here.",
               detail={"customer": customer, "removed_from": what})
        if new is not None:
            notify(cur, account_id=new, kind="customer_moved",
                   message=f"Customer {customer} now belongs to this account. It is in none of this account's "
                           "snapshot selections or Data Sync groups until you add it there.",
                   detail={"customer": customer})


def recheck_snapshots(settings, account_id: int) -> tuple[SnapshotSettings | None, dict[int, int | None]]:
    """The account's snapshot settings with every customer that left the account dropped (stored,
    audited, announced, in one transaction; settings left with no customer are disabled).
    Returns (the settings now, ``{dropped customer: its account now}``)."""
    from snapsync.connectors.mysql import connect
    from snapsync.connectors.state import connect_state
    from snapsync.control import snapshot_settings

    with connect_state(settings) as state, connect(settings.db) as practice:
        current = snapshot_settings.load(state, account_id)
        if current is None or not current.customers:
            return current, {}
        if not not_owned(practice, account_id, current.customers):
            return current, {}
        # Locked and read again: of two processes finding the same move, one drops it.
        current = snapshot_settings.load(state, account_id, lock=True)
        moved = not_owned(practice, account_id, current.customers if current else ())
        if current is None or not moved:
            state.commit()
            return current, {}
        left = tuple(c for c in current.customers if c not in moved)
        new = current.model_copy(update={"customers": left, "enabled": current.enabled and bool(left)})
        cur = state.cursor()
        snapshot_settings.store(cur, current, new, who=ACTOR, action=ACTION,
                                detail={"customers": sorted(moved), "reason": "no longer of this account"})
        announce(cur, account_id, moved, "the account's snapshot selection")
        state.commit()
        return new, moved


def recheck_groups(state, practice, account_id: int) -> dict[int, int | None]:
    """Drop every customer that left ``account_id`` from its sync groups, in one transaction of
    ``state`` (the state store; ``practice``: the practice schema): a target is removed, a group
    whose sync-from customer left, or that has no target left, is deleted; each change audited,
    both accounts told. Returns ``{dropped customer: its account now}``."""
    from snapsync.control import sync_groups

    state.commit()  # a fresh transaction: the lock below sees what others committed
    groups = sync_groups.load_groups(state, account_id)
    members = {c for g in groups for c in (g.source_customer, *g.targets)}
    if not members or not not_owned(practice, account_id, members):
        return {}
    cur = state.cursor()
    cur.execute("SELECT group_id FROM snapsync_sync_group WHERE account_id = %s FOR UPDATE", (account_id,))
    groups = sync_groups.load_groups(state, account_id, commit=False)
    members = {c for g in groups for c in (g.source_customer, *g.targets)}
    moved = not_owned(practice, account_id, members)
    if not moved:
        state.commit()
        return {}
    for group in groups:
        _drop_from_group(cur, group, moved)
    announce(cur, account_id, {c: a for c, a in moved.items()}, "the account's Data Sync groups")
    state.commit()
    return moved


def _drop_from_group(cur, group: SyncGroup, moved: dict[int, int | None]) -> None:
    from snapsync.control.sync_groups import delete_rows, store_group

    gone = sorted({group.source_customer, *group.targets} & set(moved))
    if not gone:
        return
    left = tuple(t for t in group.targets if t not in moved)
    detail = {"customers": gone, "reason": "no longer of this account"}
    if group.source_customer in moved or not left:
        delete_rows(cur, group.group_id)
        record_audit(cur, account_id=group.account_id, entity="sync_group", entity_id=str(group.group_id),
                     action=ACTION, before=group.model_dump(), detail={**detail, "deleted": True}, who=ACTOR)
        return
    after = group.model_copy(update={"targets": left})
    store_group(cur, after)
    record_audit(cur, account_id=group.account_id, entity="sync_group", entity_id=str(group.group_id),
                 action=ACTION, before=group.model_dump(), after=after.model_dump(), detail=detail, who=ACTOR)


def recheck_groups_of(settings, account_id: int) -> dict[int, int | None]:
    """:func:`recheck_groups` on connections of its own."""
    from snapsync.connectors.mysql import connect
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as state, connect(settings.db) as practice:
        return recheck_groups(state, practice, account_id)
