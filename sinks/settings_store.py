"""Snapshot settings per account: validated, stored in ``snapsync_snapshot_settings``,
every change audited with before and after."""

from __future__ import annotations

import json

from pydantic import ValidationError

from schemas.config import Settings
from schemas.control import SnapshotSettings, utcnow
from schemas.errors import ConfigError
from snapsync.control import actor, customer_accounts, ensure_control_tables, record_audit
from snapsync.db import connect


def _format_errors(exc: ValidationError) -> str:
    fixes = {"format": "use dat or mysql", "kind": "use full or incremental",
             "packaging": "use per-customer or combined", "container": "use folder or zip",
             "customers": "give existing customer ids of this account, e.g. --customers 1,2",
             "keep": "keep between 1 and 30 deliveries", "account_id": "give the account id (--account N)"}
    lines = ["invalid snapshot settings:"]
    for e in exc.errors():
        key = str(e["loc"][0]) if e["loc"] else "?"
        lines.append(f"  - {key}: {e['msg'].removeprefix('Value error, ')} ({fixes.get(key, 'see --help')})")
    return "\n".join(lines)


def check_customers(conn, account_id: int, customers: tuple[int, ...]) -> None:
    cur = conn.cursor()
    cur.execute("SELECT account_id FROM account WHERE account_id = %s", (account_id,))
    if cur.fetchone() is None:
        raise ConfigError(f"unknown account {account_id}: give an existing account id")
    found = customer_accounts(conn, customers)
    problems = []
    unknown = [c for c in customers if c not in found]
    if unknown:
        problems.append(f"unknown customer(s) {', '.join(map(str, unknown))}")
    other = [c for c in customers if c in found and found[c] != account_id]
    if other:
        problems.append(f"customer(s) {', '.join(map(str, other))} belong to another account")
    if problems:
        raise ConfigError("invalid snapshot settings: " + "; ".join(problems)
                          + f": select customers of account {account_id}")


def load(conn, account_id: int) -> SnapshotSettings | None:
    cur = conn.cursor()
    cur.execute("SELECT account_id, enabled, format, kind, packaging, container, customers, `keep` "
                "FROM snapsync_snapshot_settings WHERE account_id = %s", (account_id,))
    r = cur.fetchone()
    conn.commit()
    if r is None:
        return None
    return SnapshotSettings(account_id=r[0], enabled=bool(r[1]), format=r[2], kind=r[3], packaging=r[4],
                            container=r[5], customers=tuple(json.loads(r[6])), keep=r[7])


def all_enabled(conn) -> list[SnapshotSettings]:
    cur = conn.cursor()
    cur.execute("SELECT account_id FROM snapsync_snapshot_settings WHERE enabled = 1 ORDER BY account_id")
    ids = [r[0] for r in cur.fetchall()]
    return [s for s in (load(conn, a) for a in ids) if s is not None]


def configure(settings: Settings, account_id: int, **changes) -> SnapshotSettings:
    """Create or update an account's settings (unspecified fields keep their value)."""
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        before = load(conn, account_id)
        base = before.model_dump() if before else {"account_id": account_id}
        base.update({k: v for k, v in changes.items() if v is not None})
        try:
            new = SnapshotSettings(**base)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc)) from None
        check_customers(conn, account_id, new.customers)
        cur = conn.cursor()
        cur.execute(
            "REPLACE INTO snapsync_snapshot_settings (account_id, enabled, format, kind, packaging, container, "
            "customers, `keep`, updated_at, updated_by) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (account_id, int(new.enabled), new.format, new.kind, new.packaging, new.container,
             json.dumps(list(new.customers)), new.keep, utcnow(), actor()))
        record_audit(cur, account_id=account_id, entity="snapshot_settings", entity_id=str(account_id),
                     action="create" if before is None else "update",
                     before=before.model_dump() if before else None, after=new.model_dump())
        conn.commit()
        return new


def disable(settings: Settings, account_id: int) -> SnapshotSettings:
    with connect(settings.db) as conn:
        ensure_control_tables(conn)
        before = load(conn, account_id)
    if before is None:
        raise ConfigError(f"account {account_id} has no snapshot settings: nothing to disable")
    return configure(settings, account_id, enabled=False)
