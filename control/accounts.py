"""Accounts and their customers: the one check of a selection of customers."""

from __future__ import annotations

from collections.abc import Iterable

from snapsync.schemas.errors import ConfigError


def customer_accounts(conn, customers: Iterable[int]) -> dict[int, int]:
    """``{customer_id: account_id}`` for those of ``customers`` that exist."""
    customers = list(customers)
    if not customers:
        return {}
    cur = conn.cursor()
    cur.execute("SELECT customer_id, account_id FROM customer WHERE customer_id IN ("
                + ",".join(["%s"] * len(customers)) + ")", customers)
    return dict(cur.fetchall())


def account_exists(conn, account_id: int) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM account WHERE account_id = %s", (account_id,))
    return cur.fetchone() is not None


def require_account(conn, account_id: int) -> None:
    """Raises ConfigError when the account does not exist."""
    if not account_exists(conn, account_id):
        raise ConfigError(f"unknown account {account_id}: give an existing account id")


def account_of(conn, customer: int, *, what: str = "sync group") -> int:
    """The account owning ``customer``.

    Raises:
        ConfigError: the customer does not exist.
    """
    found = customer_accounts(conn, [customer])
    if customer not in found:
        raise ConfigError(f"invalid {what}: unknown customer(s) {customer}")
    return found[customer]


def customers_of(conn, account_id: int) -> list[tuple[int, str]]:
    """(customer id, name) of every customer of the account, by id."""
    cur = conn.cursor()
    cur.execute("SELECT customer_id, name FROM customer WHERE account_id = %s ORDER BY customer_id", (account_id,))
    rows = [(r[0], r[1]) for r in cur.fetchall()]
    conn.commit()
    return rows


def account_name(conn, account_id: int) -> str | None:
    cur = conn.cursor()
    cur.execute("SELECT name FROM account WHERE account_id = %s", (account_id,))
    row = cur.fetchone()
    conn.commit()
    return None if row is None else row[0]


def check_customers(conn, customers: Iterable[int], *, what: str, account_id: int | None = None,
                    hint: str = "", tenant_view: bool = False) -> int:
    """Every customer exists, none is listed twice, and all belong to one account
    (``account_id`` when given). Returns that account.

    Args:
        what: what is being checked, for the message (``snapshot export``, ``sync group``...).
        hint: what to do, appended to the message.
        tenant_view: the caller acts inside ``account_id`` (the web app): customers of other
            accounts are reported as unknown, so the answer tells nothing about them.

    Raises:
        ConfigError: naming every problem at once.
    """
    customers = list(customers)
    if account_id is not None:
        require_account(conn, account_id)
    problems = []
    if not customers:
        problems.append("no customers selected: give at least one customer id")
    if len(set(customers)) != len(customers):
        problems.append("a customer is selected twice: list each customer once")
    found = customer_accounts(conn, customers)
    if tenant_view and account_id is not None:
        found = {c: a for c, a in found.items() if a == account_id}
    unknown = [c for c in dict.fromkeys(customers) if c not in found]
    if unknown:
        problems.append(f"unknown customer(s) {', '.join(map(str, unknown))}")
    if account_id is not None:
        other = [c for c in dict.fromkeys(customers) if c in found and found[c] != account_id]
        if other:
            problems.append(f"customer(s) {', '.join(map(str, other))} belong to another account")
    else:
        accounts = sorted(set(found.values()))
        if len(accounts) > 1:
            problems.append(f"the customers belong to different accounts ({', '.join(map(str, accounts))})")
    if problems:
        raise ConfigError(f"invalid {what}: " + "; ".join(problems) + (f": {hint}" if hint else ""))
    return account_id if account_id is not None else next(iter(set(found.values())))


def name_of(settings, account_id: int) -> str | None:
    """:func:`account_name` on its own connection."""
    from snapsync.connectors.mysql import connect

    with connect(settings.db) as conn:
        return account_name(conn, account_id)


def list_customers(settings, account_id: int) -> list[tuple[int, str]]:
    """:func:`customers_of` on its own connection."""
    from snapsync.connectors.mysql import connect

    with connect(settings.db) as conn:
        return customers_of(conn, account_id)
