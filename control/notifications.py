"""Messages to an account (the product's Messaging section): snapshot ready, sync
notices, failures. Stored in ``snapsync_notification``; the same events go to the
notifications topic for live listeners."""

from __future__ import annotations

import json
from typing import Any

from snapsync.schemas.control import utcnow


def notify(cur, *, account_id: int, kind: str, message: str, detail: Any = None) -> int:
    """A message to the account (the product's Messaging section), in the caller's transaction."""
    cur.execute(
        "INSERT INTO snapsync_notification (account_id, at, kind, message, detail) VALUES (%s, %s, %s, %s, %s)",
        (account_id, utcnow(), kind, message[:1000], None if detail is None else json.dumps(detail, default=str)),
    )
    return cur.lastrowid


def for_user(settings, account_id: int, user_id: int, *, unread_only: bool = False, limit: int = 100) -> list[dict]:
    """The account's messages, newest first, each with whether this user has read it."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT n.notification_id, n.at, n.kind, n.message, n.detail, r.read_at FROM snapsync_notification n "
            "LEFT JOIN snapsync_notification_read r ON r.notification_id = n.notification_id AND r.user_id = %s "
            "WHERE n.account_id = %s" + (" AND r.read_at IS NULL" if unread_only else "")
            + " ORDER BY n.notification_id DESC LIMIT %s", (user_id, account_id, limit))
        rows = cur.fetchall()
        conn.commit()
    return [{"notification_id": r[0], "at": r[1].isoformat(), "kind": r[2], "message": r[3],
             "detail": json.loads(r[4]) if r[4] else None, "read": r[5] is not None} for r in rows]


def unread_count(settings, account_id: int, user_id: int) -> int:
    """How many of the account's messages this user has not read."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM snapsync_notification n LEFT JOIN snapsync_notification_read r "
                    "ON r.notification_id = n.notification_id AND r.user_id = %s "
                    "WHERE n.account_id = %s AND r.read_at IS NULL", (user_id, account_id))
        n = int(cur.fetchone()[0])
        conn.commit()
    return n


def mark_read(settings, account_id: int, user_id: int, ids: list[int] | None = None) -> int:
    """Mark messages of the account as read by this user (``ids`` None: all of them). Ids of
    other accounts' messages are ignored. Returns how many were newly marked."""
    from snapsync.connectors.state import connect_state

    with connect_state(settings) as conn:
        cur = conn.cursor()
        only = ""
        args: list[Any] = [user_id, utcnow(), account_id]
        if ids is not None:
            if not ids:
                return 0
            only = " AND notification_id IN (" + ",".join(["%s"] * len(ids)) + ")"
            args.extend(int(i) for i in ids)
        cur.execute("INSERT IGNORE INTO snapsync_notification_read (notification_id, user_id, read_at) "
                    "SELECT notification_id, %s, %s FROM snapsync_notification WHERE account_id = %s" + only, args)
        n = cur.rowcount
        conn.commit()
    return n
