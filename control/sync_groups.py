"""Data Sync groups per account: validated, stored in the state store, every change audited."""

from __future__ import annotations

import json

from pydantic import ValidationError

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_state
from snapsync.control.accounts import account_of, check_customers, require_account
from snapsync.control.audit import record_audit
from snapsync.schemas.config import Settings
from snapsync.schemas.catalog import CATEGORY_HINT
from snapsync.schemas.control import CLI_CATEGORIES, SyncGroup, utcnow
from snapsync.schemas.errors import ConfigError, NotFoundError, config_error


def parse_categories(text: str) -> tuple[str, ...]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLI_CATEGORIES]
    if unknown:
        raise ConfigError(f"unknown data category {', '.join(unknown)}: {CATEGORY_HINT}")
    return tuple(CLI_CATEGORIES[c] for c in names)


def _model(**kw) -> SyncGroup:
    try:
        return SyncGroup(**kw)
    except ValidationError as exc:
        raise config_error(exc, "invalid sync group:") from None


def load_groups(conn, account_id: int | None = None, *, commit: bool = True) -> list[SyncGroup]:
    """The groups (of one account), by id; ``commit=False`` inside the caller's transaction."""
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
    if commit:
        conn.commit()
    return groups


def load_groups_for(settings: Settings, account_id: int) -> list[SyncGroup]:
    with connect_state(settings) as conn:
        return load_groups(conn, account_id)


def validate(conn, source, group: SyncGroup, *, tenant_view: bool = False) -> None:
    """The checks that need the database: customers and accounts (``source``: the practice
    database), conflicting sources (``conn``: the state store).

    Args:
        tenant_view: the caller acts inside ``group.account_id`` (the web app): customers of
            other accounts are reported as unknown.

    Raises:
        ConfigError: every problem found, each with what to do; ``fields`` names the field
            (``source_customer``, ``targets``) each problem belongs to.
    """
    problems: list[tuple[str, str]] = []
    if group.source_customer in group.targets:
        problems.append(("targets", f"customer {group.source_customer} cannot sync to itself: remove it from --to"))
    for field, customers in (("source_customer", (group.source_customer,)),
                             ("targets", tuple(t for t in group.targets if t != group.source_customer))):
        if not customers:
            continue
        try:
            check_customers(source, customers, what="sync group", hint="Data Sync works within one account",
                            account_id=group.account_id if tenant_view else None, tenant_view=tenant_view)
        except ConfigError as exc:
            problems.append((field, str(exc).removeprefix("invalid sync group: ")))
    if not problems and not tenant_view:
        try:
            check_customers(source, (group.source_customer, *(t for t in group.targets if t != group.source_customer)),
                            what="sync group", hint="Data Sync works within one account")
        except ConfigError as exc:
            problems.append(("targets", str(exc).removeprefix("invalid sync group: ")))
    if not problems:
        for other in load_groups(conn, group.account_id):
            if other.group_id == group.group_id or other.source_customer == group.source_customer:
                continue
            for target in set(other.targets) & set(group.targets):
                both = set(other.categories) & set(group.categories)
                if both:
                    problems.append(("targets",
                        f"customer {target} already receives {', '.join(sorted(both))} from customer "
                        f"{other.source_customer} (group {other.group_id}): a target takes each category "
                        "from one source only"))
    if problems:
        fields: dict[str, str] = {}
        for field, text in problems:
            fields[field] = f"{fields[field]}; {text}" if field in fields else text
        raise ConfigError("invalid sync group: " + "; ".join(t for _f, t in problems), fields=fields)


def store_group(cur, group: SyncGroup) -> int:
    """Write a group (new when it has no id) and its targets, in the caller's transaction."""
    now = utcnow()
    if group.group_id is None:
        cur.execute("INSERT INTO snapsync_sync_group (account_id, source_customer, mode, categories, created_at, "
                    "updated_at) VALUES (%s,%s,%s,%s,%s,%s)",
                    (group.account_id, group.source_customer, group.mode, json.dumps(list(group.categories)), now, now))
        gid = cur.lastrowid
    else:
        gid = group.group_id
        cur.execute("UPDATE snapsync_sync_group SET source_customer=%s, mode=%s, categories=%s, updated_at=%s "
                    "WHERE group_id=%s", (group.source_customer, group.mode, json.dumps(list(group.categories)),
                                          now, gid))
        cur.execute("DELETE FROM snapsync_sync_target WHERE group_id=%s", (gid,))
    cur.executemany("INSERT INTO snapsync_sync_target (group_id, target_customer, added_at) VALUES (%s,%s,%s)",
                    [(gid, t, now) for t in group.targets])
    return gid


def add_group(settings: Settings, source: int, targets: tuple[int, ...], categories: tuple[str, ...],
              mode: str = "create-only", *, account_id: int | None = None, who: str | None = None,
              then=None) -> SyncGroup:
    """Store a new group (validated, audited).

    Args:
        account_id: the account the caller acts in (the web app): every customer must be one
            of its own, others are reported as unknown. Default: the source customer's account.
        who: who makes the change, for the audit.
        then: ``then(conn, group)`` runs in the same transaction before it commits (the
            initial copy's tasks).
    """
    with connect_state(settings) as conn, connect(settings.db) as practice:
        tenant_view = account_id is not None
        if account_id is None:
            account_id = account_of(practice, source)
        group = _model(account_id=account_id, source_customer=source, targets=targets, categories=categories,
                       mode=mode)
        validate(conn, practice, group, tenant_view=tenant_view)
        cur = conn.cursor()
        gid = store_group(cur, group)
        group = group.model_copy(update={"group_id": gid})
        record_audit(cur, account_id=group.account_id, entity="sync_group", entity_id=str(gid), action="create",
                     after=group.model_dump(), who=who)
        if then is not None:
            then(conn, group)
        conn.commit()
        return group


def get_group(conn, group_id: int, account_id: int | None = None) -> SyncGroup:
    """The group ``group_id`` (of ``account_id`` when given).

    Raises:
        NotFoundError: no such group (in that account): the same answer either way.
    """
    for g in load_groups(conn, account_id):
        if g.group_id == group_id:
            return g
    raise NotFoundError(f"sync group {group_id} does not exist: `snapsync sync list` shows the groups")


def find_group(settings: Settings, account_id: int, group_id: int) -> SyncGroup:
    """:func:`get_group` of one account, on its own connection."""
    with connect_state(settings) as conn:
        return get_group(conn, group_id, account_id)


def edit_group(settings: Settings, group_id: int, *, source: int | None = None,
               targets: tuple[int, ...] | None = None, categories: tuple[str, ...] | None = None,
               mode: str | None = None, account_id: int | None = None,
               who: str | None = None, then=None) -> tuple[SyncGroup, SyncGroup]:
    """Change a group; returns (before, after).

    Args:
        account_id: the account the caller acts in (the web app): the group and every
            customer must be its own (otherwise: does not exist / unknown customer).
        then: ``then(conn, before, after)`` runs in the same transaction before it commits.
    """
    with connect_state(settings) as conn, connect(settings.db) as practice:
        before = get_group(conn, group_id, account_id)
        data = before.model_dump()
        data.update({k: v for k, v in {"source_customer": source, "targets": targets, "categories": categories,
                                       "mode": mode}.items() if v is not None})
        after = _model(**data)
        validate(conn, practice, after, tenant_view=account_id is not None)
        cur = conn.cursor()
        store_group(cur, after)
        record_audit(cur, account_id=after.account_id, entity="sync_group", entity_id=str(group_id),
                     action="update", before=before.model_dump(), after=after.model_dump(), who=who)
        if then is not None:
            then(conn, before, after)
        conn.commit()
        return before, after


def delete_rows(cur, group_id: int) -> None:
    """Remove a group and its targets, in the caller's transaction."""
    cur.execute("DELETE FROM snapsync_sync_target WHERE group_id=%s", (group_id,))
    cur.execute("DELETE FROM snapsync_sync_group WHERE group_id=%s", (group_id,))


def delete_group(settings: Settings, group_id: int, *, account_id: int | None = None,
                 who: str | None = None) -> SyncGroup:
    with connect_state(settings) as conn:
        before = get_group(conn, group_id, account_id)
        cur = conn.cursor()
        delete_rows(cur, group_id)
        record_audit(cur, account_id=before.account_id, entity="sync_group", entity_id=str(group_id),
                     action="delete", before=before.model_dump(), who=who)
        conn.commit()
        return before


def set_service(settings: Settings, account_id: int, enabled: bool, *, who: str | None = None, then=None) -> None:
    """Enable or disable an account's Data Sync (audited); ``then(conn)`` runs in the same
    transaction before it commits."""
    with connect(settings.db) as practice:
        require_account(practice, account_id)
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT enabled FROM snapsync_sync_service WHERE account_id = %s", (account_id,))
        row = cur.fetchone()
        cur.execute("REPLACE INTO snapsync_sync_service (account_id, enabled, updated_at) VALUES (%s,%s,%s)",
                    (account_id, int(enabled), utcnow()))
        record_audit(cur, account_id=account_id, entity="sync_service", entity_id=str(account_id),
                     action="enable" if enabled else "disable",
                     before=None if row is None else {"enabled": bool(row[0])}, after={"enabled": enabled}, who=who)
        if then is not None:
            then(conn)
        conn.commit()


def is_enabled(settings: Settings, account_id: int) -> bool:
    """Whether the account's Data Sync service is on, on its own connection."""
    with connect_state(settings) as conn:
        on = service_enabled(conn, account_id)
        conn.commit()
        return on


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


def group_account(conn, group_id: int) -> int | None:
    """The account of a group (None: there is no such group any more)."""
    cur = conn.cursor()
    cur.execute("SELECT account_id FROM snapsync_sync_group WHERE group_id = %s", (group_id,))
    row = cur.fetchone()
    return None if row is None else int(row[0])


def group_view(group: SyncGroup) -> dict:
    """A group as users see it (categories by their CLI and page names)."""
    names = {v: k for k, v in CLI_CATEGORIES.items()}
    d = group.model_dump()
    d["categories"] = [names[c] for c in group.categories]
    return d


def list_groups(settings: Settings, account_id: int | None = None) -> list[dict]:
    """Every group (of one account) as :func:`group_view`, with the account's service state."""
    with connect_state(settings) as conn:
        return [{**group_view(g), "service_enabled": service_enabled(conn, g.account_id)}
                for g in load_groups(conn, account_id)]
