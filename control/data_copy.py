"""Request a Data Copy: a one-time copy of setup data from a customer of account A into a
customer of account B, which B's Auth Rep approves or declines (the product's "Want to copy
data to customers in a different CMD account? Visit our Request a Data Copy").

The steps, each audited in both accounts (``entity`` ``data_copy``, the copy's id):

1. **Request** (an Auth Rep of A): A's customer, the categories (Data Sync's, with the same
   exclusions), create-only or override, and B's account number and the customer number B
   gave A out of band. Nothing of B is checked for A: a request to an account that does not
   exist, or naming a customer B does not have, is taken exactly like any other (it waits,
   and expires after :data:`EXPIRES_AFTER`), so a request tells A nothing about B.
2. **Approve or decline** (an Auth Rep of B, from the message in B's Messages): B confirms or
   picks its own customer. Approving queues the copy for the worker (``data_copy_tasks.py``)
   in the same transaction; A then sees the target customer's number and name, nothing else.
3. **The copy** runs once (the set-based initial copy of Data Sync: before-images kept), and
   both accounts get a message with what was copied: B the items created and overridden in
   its customer, A its own customer's items that were sent.
4. **Undo** (an Auth Rep of B): as Data Sync's, refused when items changed since unless
   confirmed.

Who sees what (:func:`view`): A sees what A typed, the state, and once B approved the target
customer's number and name. B sees A's account, the source customer and what is asked.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from snapsync.connectors.mysql import connect
from snapsync.connectors.state import connect_state
from snapsync.control.accounts import account_exists, account_name, customer_accounts, customers_of
from snapsync.control.audit import actor, record_audit
from snapsync.control.notifications import notify
from snapsync.schemas.config import Settings
from snapsync.schemas.control import CLI_CATEGORIES, DataCopyRequest, utcnow
from snapsync.schemas.errors import ConfigError, NotFoundError

#: A request not answered in this time expires (it can no longer be approved).
EXPIRES_AFTER = dt.timedelta(days=30)
Side = Literal["from", "to"]
_NAMES = {v: k for k, v in CLI_CATEGORIES.items()}
#: Page names of the categories.
CATEGORY_LABELS = {"codes": "Codes", "facilities": "Facilities", "referring_providers": "Referring Providers",
                   "payers": "Payers"}


@dataclass(frozen=True)
class DataCopy:
    copy_id: int
    from_account: int
    source_customer: int
    to_account: int
    to_customer_hint: int
    target_customer: int | None
    target_name: str | None
    categories: tuple[str, ...]
    mode: str
    state: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    task_id: int | None
    result: dict | None

    @property
    def status(self) -> str:
        """The state, ``expired`` for a request left unanswered too long."""
        if self.state == "requested" and utcnow() - self.requested_at > EXPIRES_AFTER:
            return "expired"
        return self.state

    def side(self, account_id: int) -> Side | None:
        return "from" if account_id == self.from_account else "to" if account_id == self.to_account else None

    def categories_text(self) -> str:
        return ", ".join(CATEGORY_LABELS[c] for c in self.categories)


_COLUMNS = ("copy_id, from_account, source_customer, to_account, to_customer_hint, target_customer, target_name, "
            "categories, mode, state, requested_by, requested_at, decided_by, decided_at, task_id, result")


def _copy(row) -> DataCopy:
    return DataCopy(*row[:7], tuple(json.loads(row[7])), *row[8:15], json.loads(row[15]) if row[15] else None)


def load(conn, copy_id: int, *, lock: bool = False) -> DataCopy | None:
    cur = conn.cursor()
    cur.execute(f"SELECT {_COLUMNS} FROM snapsync_data_copy WHERE copy_id = %s" + (" FOR UPDATE" if lock else ""),
                (copy_id,))
    row = cur.fetchone()
    return None if row is None else _copy(row)


def _missing(copy_id: int) -> NotFoundError:
    return NotFoundError(f"Data Copy {copy_id} does not exist: `snapsync copy list` shows them")


def find(settings: Settings, account_id: int | None, copy_id: int) -> tuple[DataCopy, Side | None]:
    """The copy and the side ``account_id`` is on (None: the operator, any copy).

    Raises:
        NotFoundError: no such copy, or one the account is on neither side of (the same answer).
    """
    with connect_state(settings) as conn:
        copy = load(conn, copy_id)
        conn.commit()
    side = None if copy is None or account_id is None else copy.side(account_id)
    if copy is None or (account_id is not None and side is None):
        raise _missing(copy_id)
    return copy, side


# --- what each side sees ------------------------------------------------------------------
def view(copy: DataCopy, side: Side | None, names: dict | None = None) -> dict:
    """The copy as the account on ``side`` may see it (``None``: the operator, everything).
    ``names`` (:func:`_names`): the viewer's own customers' names (``own``), the source
    customers' names that requests sent to it share (``shared``), the senders' account names."""
    names = names or {}
    own, shared, accounts = names.get("own", {}), names.get("shared", {}), names.get("accounts", {})
    base = {"copy_id": copy.copy_id, "side": side, "status": copy.status, "mode": copy.mode,
            "categories": [_NAMES[c] for c in copy.categories],
            "category_labels": [CATEGORY_LABELS[c] for c in copy.categories],
            "requested_at": copy.requested_at.isoformat(),
            "source_customer": copy.source_customer,
            "source_name": (own if side == "from" else shared if side == "to" else own).get(copy.source_customer)}
    approved = copy.state in ("approved", "done", "failed", "undone")
    target = ({"target_customer": copy.target_customer, "target_name": copy.target_name} if approved
              else {"target_customer": None, "target_name": None})
    result = copy.result or {}
    if side == "from":  # what A typed, and of B only the target once approved
        return {**base, "from_account": copy.from_account, "to_account": copy.to_account,
                "to_customer": copy.to_customer_hint, "requested_by": copy.requested_by, **target,
                "decided_at": copy.decided_at.isoformat() if copy.decided_at else None,
                "result": {"source_items": result["source_items"]} if result.get("source_items") else None}
    out = {**base, "from_account": copy.from_account, "from_account_name": accounts.get(copy.from_account),
           "to_account": copy.to_account, "to_customer": copy.to_customer_hint,
           "to_customer_name": own.get(copy.to_customer_hint), **target, "decided_by": copy.decided_by,
           "decided_at": copy.decided_at.isoformat() if copy.decided_at else None, "task_id": copy.task_id,
           "result": copy.result}
    if side is None:
        out["requested_by"] = copy.requested_by
    return out


def _names(practice, copies: list[DataCopy], account_id: int | None) -> dict:
    """The names a list of copies may show to ``account_id`` (None: the operator, all): its
    own customers', and for the copies it receives the sender's account and source customer."""
    cur = practice.cursor()

    def customer_names(ids) -> dict:
        ids = sorted(set(ids))
        if not ids:
            return {}
        cur.execute("SELECT customer_id, name FROM customer WHERE customer_id IN (" + ",".join(["%s"] * len(ids))
                    + ")", ids)
        return dict(cur.fetchall())

    received = [c for c in copies if account_id is None or c.to_account == account_id]
    if account_id is None:
        own = customer_names(i for c in copies for i in (c.source_customer, c.to_customer_hint))
    else:
        own = dict(customers_of(practice, account_id))
    shared = customer_names(c.source_customer for c in received)
    accounts = {a: account_name(practice, a) for a in {c.from_account for c in received}}
    practice.commit()
    return {"own": own, "shared": shared, "accounts": accounts}


def account_copies(settings: Settings, account_id: int | None, limit: int = 100) -> dict[str, list[dict]]:
    """The copies an account sent and received (the operator: every copy, as ``all``),
    newest first, as :func:`view` shows them to it."""
    with connect_state(settings) as conn:
        cur = conn.cursor()
        if account_id is None:
            cur.execute(f"SELECT {_COLUMNS} FROM snapsync_data_copy ORDER BY copy_id DESC LIMIT %s", (limit,))
        else:
            cur.execute(f"SELECT {_COLUMNS} FROM snapsync_data_copy WHERE from_account = %s OR to_account = %s "
                        "ORDER BY copy_id DESC LIMIT %s", (account_id, account_id, limit))
        copies = [_copy(r) for r in cur.fetchall()]
        conn.commit()
    with connect(settings.db) as practice:
        names = _names(practice, copies, account_id)
    if account_id is None:
        return {"all": [view(c, None, names) for c in copies]}
    return {"sent": [view(c, "from", names) for c in copies if c.from_account == account_id],
            "received": [view(c, "to", names) for c in copies if c.to_account == account_id]}


def copy_view(settings: Settings, account_id: int | None, copy_id: int) -> dict:
    """One copy as :func:`view` shows it to ``account_id``.

    Raises:
        NotFoundError: not one of the account's copies.
    """
    copy, side = find(settings, account_id, copy_id)
    with connect(settings.db) as practice:
        return view(copy, side, _names(practice, [copy], account_id))


# --- the steps ----------------------------------------------------------------------------
def audit_both(cur, copy: DataCopy, action: str, *, for_from: dict, for_to: dict | None, who: str,
               by: Side) -> None:
    """One record in each account's history, each with only what that account may see
    (``for_to`` None: the receiving account is not told, e.g. it does not exist). ``who``
    acted for the account on side ``by``: the other account's record names that account, not
    its person (an e-mail address of one account is never shown to another)."""
    other = f"account #{copy.to_account if by == 'to' else copy.from_account}"
    record_audit(cur, account_id=copy.from_account, entity="data_copy", entity_id=str(copy.copy_id), action=action,
                 detail=for_from, who=who if by == "from" else other)
    if for_to is not None:
        record_audit(cur, account_id=copy.to_account, entity="data_copy", entity_id=str(copy.copy_id),
                     action=action, detail=for_to, who=who if by == "to" else other)


def request(settings: Settings, account_id: int, req: DataCopyRequest, *, who: str | None = None,
            tenant_view: bool = True) -> DataCopy:
    """Record A's request (audited) and tell B in its Messages.

    Args:
        tenant_view: the caller acts inside ``account_id`` (the web app): nothing of the other
            account is checked or told. Otherwise (the CLI, an operator's tool) the receiving
            account and customer must exist.

    Raises:
        ConfigError: the source customer is not one of the account's; the receiving account is
            the requesting one; (operator) an unknown receiving account or customer. ``fields``
            names the field of each problem.
    """
    who = who or actor()
    problems: dict[str, str] = {}
    with connect(settings.db) as practice:
        owners = customer_accounts(practice, [req.source_customer, req.to_customer])
        receiver = account_exists(practice, req.to_account)
        from_name = account_name(practice, account_id)
        source_name = dict(customers_of(practice, account_id)).get(req.source_customer)
    if owners.get(req.source_customer) != account_id:
        problems["source_customer"] = f"unknown customer {req.source_customer}: choose one of your customers"
    if req.to_account == account_id:
        problems["to_account"] = ("this is your own account: copy between your own customers with Data Sync "
                                  "(Services > Data Sync)")
    elif not tenant_view and not receiver:
        problems["to_account"] = f"unknown account {req.to_account}: give an existing account id"
    elif not tenant_view and owners.get(req.to_customer) != req.to_account:
        problems["to_customer"] = f"customer {req.to_customer} is not a customer of account {req.to_account}"
    if problems:
        raise ConfigError("invalid Data Copy request: " + "; ".join(f"{k}: {v}" for k, v in problems.items()),
                          fields=problems)
    now = utcnow()
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO snapsync_data_copy (from_account, source_customer, to_account, to_customer_hint, "
                    "categories, mode, state, requested_by, requested_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, 'requested', %s, %s, %s)",
                    (account_id, req.source_customer, req.to_account, req.to_customer, json.dumps(list(req.categories)),
                     req.mode, who, now, now))
        copy = load(conn, cur.lastrowid)
        asked = {"source_customer": req.source_customer, "categories": list(req.categories), "mode": req.mode}
        audit_both(cur, copy, "request", who=who, by="from",
                    for_from={**asked, "to_account": req.to_account, "to_customer": req.to_customer},
                    for_to={**asked, "from_account": account_id, "to_customer": req.to_customer} if receiver else None)
        if receiver:
            how = "only creating items that do not exist" if req.mode == "create-only" else "overriding existing items"
            notify(cur, account_id=req.to_account, kind="data_copy_request",
                   message=f"Account #{account_id} ({from_name}) asks for a one-time Data Copy of its customer "
                           f"#{req.source_customer} ({source_name})'s {copy.categories_text()} into your customer "
                           f"#{req.to_customer} ({how}). Open Data Copy to approve or decline it.",
                   detail={"copy_id": copy.copy_id})
        conn.commit()
    return copy


def _receiving(conn, account_id: int | None, copy_id: int) -> DataCopy:
    """The copy, locked, when ``account_id`` receives it (None: the operator)."""
    copy = load(conn, copy_id, lock=True)
    if copy is None or (account_id is not None and copy.to_account != account_id):
        conn.rollback()
        raise _missing(copy_id)
    return copy


def _awaiting(conn, copy: DataCopy) -> None:
    if copy.status != "requested":
        conn.rollback()
        raise ConfigError(f"Data Copy {copy.copy_id} is {copy.status}: only a request awaiting an answer can be "
                          "approved or declined", fields={"form": f"this request is {copy.status}"})


def approve(settings: Settings, account_id: int | None, copy_id: int, target_customer: int | None = None, *,
            who: str | None = None) -> tuple[DataCopy, int]:
    """B approves: its customer ``target_customer`` (default: the one A named) receives the
    copy, which is queued for the worker in the same transaction. Returns (copy, task id).

    Raises:
        NotFoundError: not a copy the account receives.
        ConfigError: not awaiting an answer; the target is not one of the receiving account's
            customers (said like an unknown customer); the source customer left the requesting
            account.
    """
    from snapsync.control.sync_tasks import enqueue

    who = who or actor()
    with connect_state(settings) as conn:
        copy = _receiving(conn, account_id, copy_id)
        _awaiting(conn, copy)
        conn.commit()
    target = target_customer or copy.to_customer_hint
    with connect(settings.db) as practice:
        owners = customer_accounts(practice, [target, copy.source_customer])
        names = dict(customers_of(practice, copy.to_account))
    if owners.get(target) != copy.to_account:
        raise ConfigError(f"invalid approval: unknown customer {target}: choose one of your customers",
                          fields={"target_customer": f"unknown customer {target}: choose one of your customers"})
    if owners.get(copy.source_customer) != copy.from_account:
        raise ConfigError(f"Data Copy {copy_id} cannot be approved: its source customer is no longer the "
                          "requesting account's; decline it", fields={"form": "the source customer has moved"})
    with connect_state(settings) as conn:
        copy = _receiving(conn, account_id, copy_id)
        _awaiting(conn, copy)  # decided meanwhile by someone else
        cur = conn.cursor()
        task_id = enqueue(cur, copy.to_account, "data_copy", {"copy_id": copy_id}, who=who)
        cur.execute("UPDATE snapsync_data_copy SET state = 'approved', target_customer = %s, target_name = %s, "
                    "decided_by = %s, decided_at = %s, task_id = %s, updated_at = %s WHERE copy_id = %s",
                    (target, names.get(target), who, utcnow(), task_id, utcnow(), copy_id))
        shown = {"target_customer": target, "target_name": names.get(target)}
        audit_both(cur, copy, "approve", who=who, by="to", for_from=shown, for_to={**shown, "task_id": task_id})
        notify(cur, account_id=copy.from_account, kind="data_copy_approved",
               message=f"Account #{copy.to_account} approved your Data Copy request #{copy_id}: customer "
                       f"#{copy.source_customer}'s {copy.categories_text()} will be copied into its customer #{target} "
                       f"({names.get(target)}). You will get a message when it is done.",
               detail={"copy_id": copy_id})
        conn.commit()
        return load(conn, copy_id), task_id


def decline(settings: Settings, account_id: int | None, copy_id: int, *, who: str | None = None) -> DataCopy:
    """B declines (audited in both accounts; A is told in its Messages).

    Raises:
        NotFoundError: not a copy the account receives.
        ConfigError: not awaiting an answer.
    """
    who = who or actor()
    with connect_state(settings) as conn:
        copy = _receiving(conn, account_id, copy_id)
        _awaiting(conn, copy)
        cur = conn.cursor()
        cur.execute("UPDATE snapsync_data_copy SET state = 'declined', decided_by = %s, decided_at = %s, "
                    "updated_at = %s WHERE copy_id = %s", (who, utcnow(), utcnow(), copy_id))
        audit_both(cur, copy, "decline", who=who, by="to", for_from={}, for_to={})
        notify(cur, account_id=copy.from_account, kind="data_copy_declined",
               message=f"Account #{copy.to_account} declined your Data Copy request #{copy_id}: nothing was copied.",
               detail={"copy_id": copy_id})
        conn.commit()
        return load(conn, copy_id)


def request_undo(settings: Settings, account_id: int | None, copy_id: int, *, force: bool = False,
                 who: str | None = None) -> int:
    """B asks to undo a copy that was made: queued for the worker (refused there, with the
    items, when they changed since, unless ``force``). Returns the task id.

    Raises:
        NotFoundError: not a copy the account receives.
        ConfigError: the copy is not done (not made yet, declined, or undone already).
    """
    from snapsync.control.sync_tasks import enqueue

    with connect_state(settings) as conn:
        copy = _receiving(conn, account_id, copy_id)
        if copy.state != "done":
            conn.rollback()
            raise ConfigError(f"Data Copy {copy_id} is {copy.status}: only a copy that was made can be undone",
                              fields={"form": f"this copy is {copy.status}"})
        task_id = enqueue(conn.cursor(), copy.to_account, "copy_undo", {"copy_id": copy_id, "force": force},
                          who=who or actor())
        conn.commit()
        return task_id


def latest_undo(settings: Settings, copy: DataCopy) -> dict | None:
    """The newest undo task of a copy, as a view (its conflicts when refused), or None."""
    with connect_state(settings) as conn:
        cur = conn.cursor()
        cur.execute("SELECT task_id FROM snapsync_sync_task WHERE account_id = %s AND kind = 'copy_undo' AND "
                    "JSON_VALUE(payload, '$.copy_id') = %s ORDER BY task_id DESC LIMIT 1",
                    (copy.to_account, copy.copy_id))
        row = cur.fetchone()
        conn.commit()
    if row is None:
        return None
    from snapsync.control.sync_tasks import get

    with connect_state(settings) as conn:
        return get(conn, [row[0]])[0].view()
