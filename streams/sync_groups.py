"""Data Sync groups per account: validated, stored in control tables, every change audited."""

from __future__ import annotations

import json

from pydantic import ValidationError

from schemas.config import Settings
from schemas.control import CLI_CATEGORIES, SyncGroup, utcnow
from schemas.errors import ConfigError
from snapsync.control import customer_accounts, ensure_control_tables, record_audit
from snapsync.db import connect


def parse_categories(text: str) -> tuple[str, ...]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLI_CATEGORIES]
    if unknown:
        raise ConfigError(f"unknown data category {', '.join(unknown)}: use codes, facilities, "
                          "referring-providers or payers")
    return tuple(CLI_CATEGORIES[c] for c in names)


def _model(**kw) -> SyncGroup:
    try:
        return SyncGroup(**kw)
    except ValidationError as exc:
        lines = ["invalid sync group:"]
        for e in exc.errors():
            key = str(e["loc"][0]) if e["loc"] else "?"
            lines.append(f"  - {key}: {e['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None


def load_groups(conn, account_id: int | None = None) -> list[SyncGroup]:
    cur = conn.cursor()
    cur.execute("SELECT group_id, account_id, source_customer, mode, categories FROM snapsync_sync_group"
                + (" WHERE account_id = %s" if account_id is not None else "") + " ORDER BY group_id",
                (account_id,) if account_id is not None else ())
    groups = []
    for gid, acc, src, mode, cats in cur.fetchall():
        cur2 = conn.cursor()
        cur2.execute("SELECT target_customer FROM snapsync_sync_target WHERE group_id = %s ORDER BY 1", (gid,))
        groups.append(SyncGroup(group_id=gid, account_id=acc, source_customer=src, mode=mode,
                                categories=tuple(json.loads(cats)), targets=tuple(r[0] for r in cur2.fetchall())))
    conn.commit()
    return groups


def load_groups_for(settings: Settings, account_id: int) -> list[SyncGroup]:
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        return load_groups(conn, account_id)


def validate(conn, group: SyncGroup) -> None:
    """The checks that need the database: customers, accounts, conflicting sources.

    Raises:
        ConfigError: every problem found, each with what to do.
    """
    customers = (group.source_customer, *group.targets)
    found = customer_accounts(conn, customers)
    problems = []
    unknown = [c for c in customers if c not in found]
    if unknown:
        problems.append(f"unknown customer(s) {', '.join(map(str, unknown))}")
    if group.source_customer in group.targets:
        problems.append(f"customer {group.source_customer} cannot sync to itself: remove it from --to")
    accounts = {found[c] for c in customers if c in found}
    if len(accounts) > 1:
        problems.append(f"the customers belong to different accounts ({', '.join(map(str, sorted(accounts)))}): "
                        "Data Sync works within one account")
    if not problems:
        for other in load_groups(conn, group.account_id):
            if other.group_id == group.group_id or other.source_customer == group.source_customer:
                continue
            for target in set(other.targets) & set(group.targets):
                both = set(other.categories) & set(group.categories)
                if both:
                    problems.append(
                        f"customer {target} already receives {', '.join(sorted(both))} from customer "
                        f"{other.source_customer} (group {other.group_id}): a target takes each category "
                        "from one source only")
    if problems:
        raise ConfigError("invalid sync group: " + "; ".join(problems))


def account_of(conn, customer: int) -> int:
    cur = conn.cursor()
    cur.execute("SELECT account_id FROM customer WHERE customer_id = %s", (customer,))
    row = cur.fetchone()
    if row is None:
        raise ConfigError(f"invalid sync group: unknown customer(s) {customer}")
    return row[0]


def _store(cur, group: SyncGroup) -> int:
    now = utcnow()
    if group.group_id is None:
        cur.execute("INSERT INTO snapsync_sync_group (account_id, source_customer, mode, categories, created_at, "
                    "updated_at) VALUES (%s,%s,%s,%s,%s,%s)",
                    (group.account_id, group.source_customer, group.mode, json.dumps(list(group.categories)), now, now))
        gid = cur.lastrowid
    else:
        gid = group.group_id
        cur.execute("UPDATE snapsync_sync_group SET mode=%s, categories=%s, updated_at=%s WHERE group_id=%s",
                    (group.mode, json.dumps(list(group.categories)), now, gid))
        cur.execute("DELETE FROM snapsync_sync_target WHERE group_id=%s", (gid,))
    cur.executemany("INSERT INTO snapsync_sync_target (group_id, target_customer, added_at) VALUES (%s,%s,%s)",
                    [(gid, t, now) for t in group.targets])
    return gid


def add_group(settings: Settings, source: int, targets: tuple[int, ...], categories: tuple[str, ...],
              mode: str = "create-only") -> SyncGroup:
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        group = _model(account_id=account_of(conn, source), source_customer=source, targets=targets,
                       categories=categories, mode=mode)
        validate(conn, group)
        cur = conn.cursor()
        gid = _store(cur, group)
        group = group.model_copy(update={"group_id": gid})
        record_audit(cur, account_id=group.account_id, entity="sync_group", entity_id=str(gid), action="create",
                     after=group.model_dump())
        conn.commit()
        return group


def get_group(conn, group_id: int) -> SyncGroup:
    for g in load_groups(conn):
        if g.group_id == group_id:
            return g
    raise ConfigError(f"sync group {group_id} does not exist: `snapsync sync list` shows the groups")


def edit_group(settings: Settings, group_id: int, *, targets: tuple[int, ...] | None = None,
               categories: tuple[str, ...] | None = None, mode: str | None = None) -> tuple[SyncGroup, SyncGroup]:
    """Change a group; returns (before, after)."""
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        before = get_group(conn, group_id)
        data = before.model_dump()
        data.update({k: v for k, v in {"targets": targets, "categories": categories, "mode": mode}.items()
                     if v is not None})
        after = _model(**data)
        validate(conn, after)
        cur = conn.cursor()
        _store(cur, after)
        record_audit(cur, account_id=after.account_id, entity="sync_group", entity_id=str(group_id),
                     action="update", before=before.model_dump(), after=after.model_dump())
        conn.commit()
        return before, after


def delete_group(settings: Settings, group_id: int) -> SyncGroup:
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        before = get_group(conn, group_id)
        cur = conn.cursor()
        cur.execute("DELETE FROM snapsync_sync_target WHERE group_id=%s", (group_id,))
        cur.execute("DELETE FROM snapsync_sync_group WHERE group_id=%s", (group_id,))
        record_audit(cur, account_id=before.account_id, entity="sync_group", entity_id=str(group_id),
                     action="delete", before=before.model_dump())
        conn.commit()
        return before


def set_service(settings: Settings, account_id: int, enabled: bool) -> None:
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        cur = conn.cursor()
        cur.execute("SELECT account_id FROM account WHERE account_id = %s", (account_id,))
        if cur.fetchone() is None:
            raise ConfigError(f"unknown account {account_id}: give an existing account id")
        cur.execute("SELECT enabled FROM snapsync_sync_service WHERE account_id = %s", (account_id,))
        row = cur.fetchone()
        cur.execute("REPLACE INTO snapsync_sync_service (account_id, enabled, updated_at) VALUES (%s,%s,%s)",
                    (account_id, int(enabled), utcnow()))
        record_audit(cur, account_id=account_id, entity="sync_service", entity_id=str(account_id),
                     action="enable" if enabled else "disable",
                     before=None if row is None else {"enabled": bool(row[0])}, after={"enabled": enabled})
        conn.commit()


def service_enabled(conn, account_id: int) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT enabled FROM snapsync_sync_service WHERE account_id = %s", (account_id,))
    row = cur.fetchone()
    return bool(row and row[0])


def routes_for(conn, source_customer: int, category: str) -> list[tuple[int, int, str]]:
    """(group id, target customer, mode) for an edit of ``category`` in ``source_customer``,
    only when the account's Data Sync service is enabled."""
    cur = conn.cursor()
    cur.execute(
        "SELECT g.group_id, t.target_customer, g.mode FROM snapsync_sync_group g "
        "JOIN snapsync_sync_target t ON t.group_id = g.group_id "
        "JOIN snapsync_sync_service s ON s.account_id = g.account_id AND s.enabled = 1 "
        "WHERE g.source_customer = %s AND JSON_CONTAINS(g.categories, JSON_QUOTE(%s)) ORDER BY 1, 2",
        (source_customer, category))
    return [(r[0], r[1], r[2]) for r in cur.fetchall()]
