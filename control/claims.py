"""Claims of the nightly round: each account's delivery for a New York day and kind happens
once, however many schedulers and export workers run (``snapsync_export_claim``, primary key
``(account_id, slot_date, kind)``).

States: ``queued`` (due; a job may be on its way) → ``running`` (an owner exports it and holds
a lease) → ``delivered`` (final), or ``failed`` (tried again later), or back to ``queued``
(a passing failure: the database or broker was away, the watermark not reached).

* **Claiming** locks the row (``SELECT ... FOR UPDATE``), so two claimants are serialised by
  the database: exactly one turns a ``queued`` or ``failed`` row into ``running``.
* **The lease.** The owner holds the slot while ``lease_until`` is in the future, and renews
  it every third of the lease while it works (a heartbeat thread). A worker that died (killed,
  its machine gone) stops renewing; once its lease has run out another may take the slot over.
  Lease times are the database server's clock (``UTC_TIMESTAMP(6)``), so the workers' own
  clocks need not agree.
* **Finishing** is conditional on still owning the claim, in the same transaction as the
  delivery record and the "ready" notification: an owner that lost its lease (stalled longer
  than the lease) cannot record a second delivery.
* **Dispatching** (the scheduler's compare-and-set on ``published_at``) decides which
  scheduler publishes a slot's job: the first round that finds it due, then again only when
  the job seems lost (still queued long after), failed a while ago, or its claimant died.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from snapsync.control.audit import record_audit

#: Seconds a claim is held without renewal (``--lease`` of the export worker).
LEASE = 30.0


class LostClaim(Exception):
    """The claim is no longer this owner's (its lease ran out and another took it over)."""


@dataclass(frozen=True)
class Claim:
    account_id: int
    slot_date: dt.date
    kind: str
    owner: str
    attempt: int
    taken_over: str | None = None  # the previous owner whose lease had run out


@dataclass(frozen=True)
class Refusal:
    """Why a slot could not be claimed: ``delivered``, or ``held`` by a live owner."""

    state: str
    owner: str | None = None
    lease_left: float = 0.0


def _key(c) -> tuple:
    return (c.account_id, c.slot_date, c.kind)


def ensure_slot(conn, account_id: int, day: dt.date, kind: str) -> None:
    """The slot's row, created ``queued`` if missing, committed at once: an ``INSERT IGNORE``
    that meets an existing row takes a shared lock, and two transactions that would then both
    upgrade it to update the row deadlock."""
    cur = conn.cursor()
    cur.execute("INSERT IGNORE INTO snapsync_export_claim (account_id, slot_date, kind, state, created_at, "
                "updated_at) VALUES (%s, %s, %s, 'queued', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                (account_id, day, kind))
    conn.commit()


def claim(conn, account_id: int, day: dt.date, kind: str, owner: str, lease: float = LEASE) -> Claim | Refusal:
    """Take the slot for ``owner``, or say why not. A running delivery record left by a
    claimant whose lease ran out is marked ``abandoned``."""
    ensure_slot(conn, account_id, day, kind)
    cur = conn.cursor()
    try:
        cur.execute("SELECT state, owner, lease_until < UTC_TIMESTAMP(6), "
                    "TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), lease_until), delivery_id, attempts "
                    "FROM snapsync_export_claim WHERE account_id=%s AND slot_date=%s AND kind=%s FOR UPDATE",
                    (account_id, day, kind))
        state, prev_owner, expired, left_us, prev_delivery, attempts = cur.fetchone()
        if state == "delivered":
            conn.commit()
            return Refusal("delivered", prev_owner)
        if state == "running" and not expired:
            conn.commit()
            return Refusal("held", prev_owner, max(0.0, (left_us or 0) / 1e6))
        taken_over = prev_owner if state == "running" else None
        cur.execute("UPDATE snapsync_export_claim SET state='running', owner=%s, "
                    "lease_until=UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, attempts=attempts+1, delivery_id=NULL, "
                    "updated_at=UTC_TIMESTAMP(6) WHERE account_id=%s AND slot_date=%s AND kind=%s",
                    (owner, int(lease * 1e6), account_id, day, kind))
        if taken_over is not None and prev_delivery is not None:
            cur.execute("UPDATE snapsync_delivery SET status='abandoned', finished_at=UTC_TIMESTAMP(6), detail=%s "
                        "WHERE delivery_id=%s AND status='running'",
                        (json.dumps({"error": "abandoned", "message": "its worker stopped renewing the claim"}),
                         prev_delivery))
            record_audit(cur, account_id=account_id, entity="delivery", entity_id=str(prev_delivery),
                         action="abandoned", detail={"slot_date": day.isoformat(), "owner": taken_over,
                                                     "taken_over_by": owner}, who="snapsync")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return Claim(account_id, day, kind, owner, int(attempts) + 1, taken_over)


def renew(conn, c: Claim, lease: float = LEASE) -> bool:
    """Extend the lease; False when the claim is no longer this owner's."""
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_export_claim SET lease_until=UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
                "WHERE account_id=%s AND slot_date=%s AND kind=%s AND owner=%s AND state='running'",
                (int(lease * 1e6), *_key(c), c.owner))
    conn.commit()
    return cur.rowcount == 1


def attach_delivery(conn, c: Claim, delivery_id: int) -> None:
    """Remember the delivery record of this attempt (marked abandoned if the owner dies)."""
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_export_claim SET delivery_id=%s WHERE account_id=%s AND slot_date=%s AND kind=%s "
                "AND owner=%s", (delivery_id, *_key(c), c.owner))
    conn.commit()


def finish(cur, c: Claim) -> None:
    """Mark the slot delivered, in the caller's transaction (with the delivery record).

    Raises:
        LostClaim: the claim is no longer this owner's: the caller rolls back.
    """
    cur.execute("UPDATE snapsync_export_claim SET state='delivered', lease_until=NULL, updated_at=UTC_TIMESTAMP(6) "
                "WHERE account_id=%s AND slot_date=%s AND kind=%s AND owner=%s AND state='running'",
                (*_key(c), c.owner))
    if cur.rowcount != 1:
        raise LostClaim(f"account {c.account_id}: the claim for {c.slot_date} was taken over (lease expired)")


def fail(conn, c: Claim) -> None:
    """The attempt failed: the slot is tried again at a later round."""
    _end(conn, c, "failed")


def release(conn, c: Claim) -> None:
    """A passing failure: the slot is queued again at once."""
    _end(conn, c, "queued")


def _end(conn, c: Claim, state: str) -> None:
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_export_claim SET state=%s, lease_until=NULL, updated_at=UTC_TIMESTAMP(6) "
                "WHERE account_id=%s AND slot_date=%s AND kind=%s AND owner=%s AND state='running'",
                (state, *_key(c), c.owner))
    conn.commit()


def dispatch(conn, account_id: int, day: dt.date, kind: str, *, republish_after: float,
             retry_after: float) -> bool:
    """Whether this scheduler sends the slot's job now (compare-and-set on ``published_at``:
    of two schedulers, one wins). True the first time a slot is due; later only when its job
    seems lost (queued for ``republish_after`` seconds since it was sent), its last attempt
    failed more than ``retry_after`` seconds ago, or its claimant's lease ran out."""
    ensure_slot(conn, account_id, day, kind)
    cur = conn.cursor()
    cur.execute(
        "UPDATE snapsync_export_claim SET published_at=UTC_TIMESTAMP(6), updated_at=UTC_TIMESTAMP(6) "
        "WHERE account_id=%s AND slot_date=%s AND kind=%s AND state <> 'delivered' AND ("
        " published_at IS NULL"
        " OR (state='queued' AND published_at <= UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND)"
        " OR (state='failed' AND updated_at <= UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND)"
        " OR (state='running' AND lease_until < UTC_TIMESTAMP(6)))",
        (account_id, day, kind, int(republish_after * 1e6), int(retry_after * 1e6)))
    conn.commit()
    return cur.rowcount == 1


def undispatch(conn, account_id: int, day: dt.date, kind: str) -> None:
    """The job could not be sent: let the next round dispatch the slot again."""
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_export_claim SET published_at=NULL WHERE account_id=%s AND slot_date=%s AND "
                "kind=%s AND state='queued'", (account_id, day, kind))
    conn.commit()


def mark_late(conn, account_id: int, day: dt.date, kind: str) -> bool:
    """True once per slot not delivered by its ready-by time (compare-and-set); the caller
    writes the notification in the same transaction and commits."""
    ensure_slot(conn, account_id, day, kind)
    cur = conn.cursor()
    cur.execute("UPDATE snapsync_export_claim SET late_notified_at=UTC_TIMESTAMP(6) WHERE account_id=%s AND "
                "slot_date=%s AND kind=%s AND late_notified_at IS NULL AND state <> 'delivered'",
                (account_id, day, kind))
    return cur.rowcount == 1


def states(conn, day: dt.date) -> dict[tuple[int, str], dict]:
    """{(account, kind): row} of the day's slots."""
    cur = conn.cursor()
    cur.execute("SELECT account_id, kind, state, owner, attempts, lease_until, late_notified_at, updated_at "
                "FROM snapsync_export_claim WHERE slot_date=%s", (day,))
    rows = cur.fetchall()
    conn.commit()
    return {(r[0], r[1]): {"state": r[2], "owner": r[3], "attempts": r[4], "lease_until": r[5],
                           "late_notified_at": r[6], "updated_at": r[7]} for r in rows}
