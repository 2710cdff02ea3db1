"""Snapshot settings per account: validated, stored in the state store's ``snapsync_snapshot_settings``,
every change audited with before and after."""

from __future__ import annotations

import json
from typing import get_args

from pydantic import ValidationError

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_state
from snapsync.control.accounts import check_customers, require_account
from snapsync.control.audit import actor, record_audit
from snapsync.schemas.config import Settings
from snapsync.schemas.control import Format, SnapshotSettings, utcnow
from snapsync.schemas.errors import ConfigError, config_error

_FIXES = {"format": "use " + ", ".join(get_args(Format)), "kind": "use full or incremental",
          "packaging": "use per-customer or combined", "container": "use folder or zip",
          "customers": "give existing customer ids of this account, e.g. --customers 1,2",
          "keep": "keep between 1 and 30 deliveries", "account_id": "give the account id (--account N)"}


def load(conn, account_id: int, *, lock: bool = False) -> SnapshotSettings | None:
    """The account's settings; ``lock``: ``FOR UPDATE``, left in the caller's transaction."""
    cur = conn.cursor()
    cur.execute("SELECT account_id, enabled, format, kind, packaging, container, customers, `keep` "
                "FROM snapsync_snapshot_settings WHERE account_id = %s" + (" FOR UPDATE" if lock else ""),
                (account_id,))
    r = cur.fetchone()
    if not lock:
        conn.commit()
    if r is None:
        return None
    return SnapshotSettings(account_id=r[0], enabled=bool(r[1]), format=r[2], kind=r[3], packaging=r[4],
                            container=r[5], customers=tuple(json.loads(r[6])), keep=r[7])


def get(settings: Settings, account_id: int) -> SnapshotSettings | None:
    """The account's settings (None when it has none), on its own connection."""
    with connect_state(settings) as conn:
        return load(conn, account_id)


def all_enabled(conn) -> list[SnapshotSettings]:
    cur = conn.cursor()
    cur.execute("SELECT account_id FROM snapsync_snapshot_settings WHERE enabled = 1 ORDER BY account_id")
    ids = [r[0] for r in cur.fetchall()]
    return [s for s in (load(conn, a) for a in ids) if s is not None]


def configure(settings: Settings, account_id: int, *, who: str | None = None, tenant_view: bool = False,
              **changes) -> SnapshotSettings:
    """Create or update an account's settings (unspecified fields keep their value).

    Args:
        who: who makes the change, for the audit (default: :func:`~snapsync.control.audit.actor`).
        tenant_view: the caller acts inside the account (the web app): customers of other
            accounts are reported as unknown.

    Raises:
        ConfigError: every problem, with ``fields`` naming the field each belongs to.
    """
    with connect_state(settings) as conn:
        before = load(conn, account_id)
        base = before.model_dump() if before else {"account_id": account_id}
        base.update({k: v for k, v in changes.items() if v is not None})
        try:
            new = SnapshotSettings(**base)
        except ValidationError as exc:
            raise config_error(exc, "invalid snapshot settings:", fixes=_FIXES) from None
        try:
            with connect(settings.db) as source:
                if new.customers or new.enabled:  # disabled with none left (they moved) is allowed
                    check_customers(source, new.customers, what="snapshot settings", account_id=account_id,
                                    hint=f"select customers of account {account_id}", tenant_view=tenant_view)
                else:
                    require_account(source, account_id)
        except ConfigError as exc:
            raise ConfigError(str(exc), fields={"customers": str(exc).removeprefix(
                "invalid snapshot settings: ")}) from None
        store(conn.cursor(), before, new, who=who)
        conn.commit()
        return new


def store(cur, before: SnapshotSettings | None, new: SnapshotSettings, *, who: str | None = None,
          action: str | None = None, detail: dict | None = None) -> None:
    """Write the settings and their audit record (``action``: default create / update) in the
    caller's transaction."""
    cur.execute(
        "REPLACE INTO snapsync_snapshot_settings (account_id, enabled, format, kind, packaging, container, "
        "customers, `keep`, updated_at, updated_by) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (new.account_id, int(new.enabled), new.format, new.kind, new.packaging, new.container,
         json.dumps(list(new.customers)), new.keep, utcnow(), who or actor()))
    record_audit(cur, account_id=new.account_id, entity="snapshot_settings", entity_id=str(new.account_id),
                 action=action or ("create" if before is None else "update"),
                 before=before.model_dump() if before else None, after=new.model_dump(), detail=detail, who=who)


def disable(settings: Settings, account_id: int, *, who: str | None = None) -> SnapshotSettings:
    with connect_state(settings) as conn:
        before = load(conn, account_id)
    if before is None:
        raise ConfigError(f"account {account_id} has no snapshot settings: nothing to disable")
    return configure(settings, account_id, enabled=False, who=who)
