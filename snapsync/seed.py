"""Deterministic synthetic practice data (fake PHI) for the demo, tests and benchmarks.

Same arguments, same data: every value comes from ``random.Random(seed)`` and pools of
Faker values drawn once from ``Faker.seed_instance(seed)``; ids are assigned here, not
by AUTO_INCREMENT; timestamps are derived from a fixed epoch, never from the clock.

Row counts: ``round(WEIGHTS[table] * scale)`` per customer (at least ``MIN_ROWS``).
Scale 1 is about 81,000 rows per customer, so ``--customers 12 --scale 1`` is about one
million rows. Rows are written with ``LOAD DATA LOCAL INFILE`` from .DAT text, the same
format the snapshot product delivers.

Hard cases are placed on purpose in the first rows of each customer (see ``HARD_TEXTS``,
``HARD_MONEY``, ``HARD_DATETIMES``): TAB, LF, CR, backslash, NUL, quotes, non-ASCII,
emoji, NULL beside empty string, zero and boundary decimals, DATETIME(6) microseconds.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from faker import Faker

from snapsync.schemas.catalog import DATASETS, DataSet
from snapsync.sinks.formats.dat import LOAD_DATA_OPTIONS, format_row

WEIGHTS: dict[str, float] = {
    "practice": 0, "provider": 20, "facility": 15, "location": 5, "referring_provider": 200,
    "payor": 150, "cpt_code": 1500, "icd_code": 2000, "icd_procedure_code": 300, "revenue_code": 100,
    "remittance_code": 300, "adjustment_code": 50, "fee_schedule": 1500, "inventory_code": 100,
    "patient": 4000, "patient_note": 2000, "insurance_party": 1000, "insurance_policy": 5000,
    "authorizations": 500, "appt_type": 10, "resource": 10, "appt": 6000, "claim_professional": 5000,
    "claim_institutional": 500, "claim_status": 4000, "claim_icd_code": 8000, "charge": 8000,
    "insurance_check": 300, "payment": 3000, "credit": 6000, "remittance": 3000, "activity": 10000,
}
MIN_ROWS = 3

#: Text values that break naive exporters; each must survive every round trip.
HARD_TEXTS: tuple[str | None, ...] = (
    "tab\there",
    "line\nfeed",
    "carriage\rreturn",
    "CRLF\r\nline",
    "back\\slash",
    "trailing backslash\\",
    "quotes ' \" `",
    "nul\x00byte",
    "Ünïcödé: José Müller, 日本語",
    "emoji 🩺💉😀",
    "",
    None,
    "\\N",
    "NULL",
    "all\t\n\r\\\x00 at once",
    " leading and trailing spaces ",
)
#: DECIMAL(12,2) hard cases: zero, negatives, smallest step, the column's extremes.
HARD_MONEY = ("0.00", "-0.01", "0.01", "9999999999.99", "-9999999999.99", "100.10")
HARD_DATETIMES = (
    "2026-03-08 02:30:00.000001",  # inside the spring-forward gap in America/New_York
    "2026-11-01 01:30:00.999999",  # the repeated hour in the fall
    "1970-01-01 00:00:00.000000",
    "2038-01-19 03:14:08.500000",  # past the 32-bit epoch
)
HARD_DATES = ("1900-01-01", "2000-02-29", "9999-12-31")

EPOCH = dt.datetime(2025, 1, 1)
SPAN_SECONDS = 540 * 86400

_REFS = {
    "patient_id": "patient", "payor_id": "payor", "provider_id": "provider",
    "rendering_provider_id": "provider", "billing_provider_id": "provider", "facility_id": "facility",
    "location_id": "location", "resource_id": "resource", "appt_type_id": "appt_type",
    "referring_provider_id": "referring_provider", "insurance_party_id": "insurance_party",
    "insurance_check_id": "insurance_check", "payment_id": "payment", "charge_id": "charge",
}


@dataclass
class Pools:
    """Faker values drawn once; rows pick from them (fast and deterministic)."""

    first: list[str]
    last: list[str]
    street: list[str]
    city: list[tuple[str, str, str]]
    company: list[str]
    sentence: list[str]
    email_domain: list[str]

    @classmethod
    def make(cls, seed: int) -> Pools:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        return cls(
            first=[fake.first_name() for _ in range(400)],
            last=[fake.last_name() for _ in range(600)],
            street=[fake.street_address() for _ in range(400)],
            city=[(fake.city(), fake.state_abbr(), fake.zipcode()) for _ in range(200)],
            company=[fake.company() for _ in range(200)],
            sentence=[fake.sentence(nb_words=10) for _ in range(300)],
            email_domain=[fake.free_email_domain() for _ in range(10)],
        )


@dataclass
class SeedPlan:
    """Rows per table per customer and the id ranges assigned."""

    customers: list[int]
    scale: float
    counts: dict[str, int] = field(default_factory=dict)
    id_start: dict[tuple[str, int], int] = field(default_factory=dict)

    def rows(self, table: str) -> int:
        return self.counts[table]

    def ids(self, table: str, customer: int) -> range:
        start = self.id_start[(table, customer)]
        return range(start, start + self.counts[table])

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values()) * len(self.customers)


def plan(customers: int, scale: float) -> SeedPlan:
    """How many rows each table gets, and which ids."""
    p = SeedPlan(customers=list(range(1, customers + 1)), scale=scale)
    for ds in DATASETS:
        if ds.table == "practice":
            n = 1
        else:
            n = max(MIN_ROWS, round(WEIGHTS[ds.table] * scale))
        if ds.table == "patient":
            n = max(n, len(HARD_TEXTS))
        p.counts[ds.table] = n
        for i, c in enumerate(p.customers):
            p.id_start[(ds.table, c)] = 1 + i * n
    return p


class Generator:
    """Produces the rows of one customer's table, column by column."""

    def __init__(self, seed: int, plan_: SeedPlan) -> None:
        self.seed = seed
        self.plan = plan_
        self.pools = Pools.make(seed)

    # -- value helpers -----------------------------------------------------------------
    @staticmethod
    def _dt(rng: random.Random) -> str:
        t = EPOCH + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS), microseconds=rng.randrange(1_000_000))
        return t.isoformat(sep=" ", timespec="microseconds")

    @staticmethod
    def _date(rng: random.Random, start_year: int = 2025, days: int = 540) -> str:
        return (dt.date(start_year, 1, 1) + dt.timedelta(days=rng.randrange(days))).isoformat()

    @staticmethod
    def _money(rng: random.Random, hi: int = 500_00) -> str:
        cents = rng.randrange(hi)
        return f"{cents // 100}.{cents % 100:02d}"

    @staticmethod
    def _digits(rng: random.Random, n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    def _natural(self, table: str, col: str, i: int, rng: random.Random) -> str:
        """Natural-key values: a shared sequence, so customers hold overlapping items."""
        if table == "cpt_code":
            return f"{10021 + i * 7 % 89979:05d}" if i < 89979 else f"G{i:04d}"
        if table == "icd_code":
            return f"{'ABCDEFGHIJKLMNOPRSTZ'[i % 20]}{i // 20 % 100:02d}.{i // 2000}{i % 10}"
        if table == "icd_procedure_code":
            return f"0{i:06X}"[:7]
        if table == "revenue_code":
            return f"{100 + i:04d}"
        if table == "remittance_code":
            return ("CARC", "RARC")[i % 2] if col == "code_type" else f"{'N' if i % 2 else ''}{i // 2 + 1}"
        if table == "adjustment_code":
            return f"ADJ{i:04d}"
        if table == "facility":
            return f"FAC{i:04d}"
        if table == "referring_provider":
            return f"1{i:09d}"
        if table == "payor":
            return f"{60000 + i:05d}"
        if table == "fee_schedule":
            if col == "schedule_name":
                return ("Standard", "Medicare", "Medicaid", "Commercial")[i % 4]
            if col == "procedure_code":
                return self._natural("cpt_code", "code", i // 8, rng)
            return ("", "26")[i // 4 % 2]
        raise AssertionError(f"no natural-key rule for {table}.{col}")

    # -- rows --------------------------------------------------------------------------
    def rows(self, ds: DataSet, customer: int) -> Iterator[list]:
        """Rows of ``ds`` for ``customer`` in column order (Python values, money as text)."""
        rng = random.Random(f"{self.seed}:{ds.table}:{customer}")
        pools = self.pools
        plan_ = self.plan
        ids = plan_.ids(ds.table, customer)
        makers: list[Callable[[int, random.Random], object]] = [
            self._fit(col.type, self._maker(ds, col.name, col.type, col.nullable, customer)) for col in ds.columns
        ]
        for i, row_id in enumerate(ids):
            row = [m(i, rng) for m in makers]
            row[0] = row_id
            if "updated_at" in ds.column_names:
                # updated_at never precedes created_at
                ci, ui = ds.column_names.index("created_at"), ds.column_names.index("updated_at")
                row[ui] = max(row[ci], row[ui])
            yield row
        del pools

    @staticmethod
    def _fit(type_: str, maker: Callable[[int, random.Random], object]) -> Callable[[int, random.Random], object]:
        """Cut text to the column's width (characters), as the application would."""
        if not type_.startswith(("VARCHAR(", "CHAR(")):
            return maker
        width = int(type_[type_.index("(") + 1:-1])

        def fitted(i: int, r: random.Random) -> object:
            v = maker(i, r)
            return v[:width].rstrip(" ") if isinstance(v, str) and len(v) > width else v

        return fitted

    def _maker(self, ds: DataSet, name: str, type_: str, nullable: bool, customer: int):
        p, plan_, t = self.pools, self.plan, ds.table
        hard = HARD_TEXTS
        if name == "id":
            return lambda i, r: 0
        if name == "customer_id":
            return lambda i, r: customer
        if name in ds.natural_key:
            return lambda i, r: self._natural(t, name, i, r)
        if name in _REFS or name in ("claim_id", "entity_id"):
            target = _REFS.get(name)
            if target is None:
                target = "claim_professional"
            rng_ids = plan_.ids(target, customer)
            optional = nullable

            def ref(i: int, r: random.Random) -> object:
                if optional and r.random() < 0.1:
                    return None
                return rng_ids[r.randrange(len(rng_ids))]

            return ref
        if name == "claim_kind":
            return lambda i, r: "P"
        # Hard-case text goes into the free-text columns of the first rows.
        if type_ == "TEXT" or name in ("address2", "middle_name", "reason", "status_text"):
            sentences = p.sentence

            def text(i: int, r: random.Random) -> object:
                if t == "patient" and name in ("notes", "address2") and i < len(hard):
                    return hard[i] if name == "notes" else hard[(i + 5) % len(hard)]
                if i < len(hard) and name in ("body", "detail", "notes", "billing_options") and i % 2 == 0:
                    return hard[(i * 3) % len(hard)]
                if nullable and r.random() < 0.3:
                    return None if r.random() < 0.5 else ""
                return sentences[r.randrange(len(sentences))][: 60 if type_ != "TEXT" else 1000]

            return text
        if name == "first_name":
            return lambda i, r: p.first[r.randrange(len(p.first))]
        if name in ("last_name",):
            if t == "patient":
                return lambda i, r: "O'Brien-Ñúñez" if i == 1 else p.last[r.randrange(len(p.last))]
            return lambda i, r: p.last[r.randrange(len(p.last))]
        if name in ("name", "description"):
            pool = p.company if t in ("practice", "facility", "payor", "location") else p.sentence
            return lambda i, r: pool[r.randrange(len(pool))][:100]
        if name == "address1":
            return lambda i, r: p.street[r.randrange(len(p.street))]
        if name == "city":
            return lambda i, r: p.city[r.randrange(len(p.city))][0]
        if name == "state":
            return lambda i, r: p.city[r.randrange(len(p.city))][1]
        if name == "zip":
            return lambda i, r: p.city[r.randrange(len(p.city))][2]
        if name == "phone":
            return lambda i, r: None if r.random() < 0.1 else f"({self._digits(r, 3)}) {self._digits(r, 3)}-{self._digits(r, 4)}"
        if name == "email":
            return lambda i, r: None if r.random() < 0.2 else f"{p.first[r.randrange(len(p.first))].lower()}{i}@{p.email_domain[i % 10]}"
        if name == "npi":
            return lambda i, r: "1" + self._digits(r, 9)
        if name == "tax_id":
            return lambda i, r: self._digits(r, 9)
        if name == "ssn":
            return lambda i, r: None if r.random() < 0.3 else self._digits(r, 9)
        if name == "sex":
            return lambda i, r: "FMU"[r.randrange(3)]
        if name == "date_of_birth":
            return lambda i, r: HARD_DATES[i] if t == "patient" and i < len(HARD_DATES) else self._date(r, 1930, 90 * 365)
        if name in ("account_number", "claim_number", "auth_number", "member_id", "check_number",
                    "payer_claim_number", "group_number", "reference"):
            return lambda i, r: f"{name[:2].upper()}{customer:03d}-{i:07d}"
        if name == "timezone":
            return lambda i, r: "America/New_York"
        if type_.startswith("ENUM("):
            options = [o.strip("'") for o in type_[5:-1].split(",")]
            return lambda i, r: options[r.randrange(len(options))]
        if type_ == "TINYINT(1)":
            return lambda i, r: int(r.random() < 0.9)
        if type_ == "DECIMAL(12,2)":
            def money(i: int, r: random.Random) -> object:
                if t in ("charge", "patient", "credit", "payment") and i < len(HARD_MONEY):
                    return HARD_MONEY[(i + len(ds.columns)) % len(HARD_MONEY)]
                if nullable and r.random() < 0.1:
                    return None
                return self._money(r)
            return money
        if type_.startswith("DECIMAL("):
            prec, scale_ = (int(x) for x in type_[8:-1].split(","))
            hi = 10 ** min(prec, 7)
            return lambda i, r: f"{r.randrange(hi) / 10 ** scale_:.{scale_}f}" if scale_ else str(r.randrange(hi))
        if type_ == "DATETIME(6)":
            def when(i: int, r: random.Random) -> object:
                if t in ("activity", "charge") and name not in ("created_at", "updated_at") and i < len(HARD_DATETIMES):
                    return HARD_DATETIMES[i]
                if nullable and r.random() < 0.15:
                    return None
                return self._dt(r)
            return when
        if type_ == "DATE":
            return lambda i, r: None if nullable and r.random() < 0.2 else self._date(r)
        if "INT" in type_:
            hi = 255 if "TINYINT" in type_ else 60 if "SMALLINT" in type_ else 10_000
            return lambda i, r: None if nullable and r.random() < 0.1 else r.randrange(1, hi)
        if type_.startswith(("CHAR(", "VARCHAR(")):
            width = int(type_[type_.index("(") + 1:-1])
            alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
            return lambda i, r: None if nullable and r.random() < 0.1 else "".join(
                r.choice(alphabet) for _ in range(min(width, 8))
            )
        raise AssertionError(f"no value rule for {t}.{name} {type_}")


def seed(conn, customers: int, scale: float, seed_value: int, *, accounts: int | None = None,
         progress: Callable[[str, int], None] | None = None) -> SeedPlan:
    """(Re)create the practice schema and fill it deterministically.

    Customers are spread over ``accounts`` accounts (default: one account per three
    customers, at least one), customer ``c`` belonging to account ``(c - 1) % accounts + 1``.
    Control tables (``snapsync_*``) are left alone.
    """
    from snapsync.connectors.mysql import create_schema

    if customers < 1:
        raise ValueError("--customers must be at least 1")
    if scale <= 0:
        raise ValueError("--scale must be greater than 0")
    p = plan(customers, scale)
    gen = Generator(seed_value, p)
    create_schema(conn, drop=True)
    cur = conn.cursor()
    n_accounts = accounts or max(1, (customers + 2) // 3)
    rng = random.Random(seed_value)
    cur.executemany(
        "INSERT INTO account (account_id, name, created_at) VALUES (%s, %s, %s)",
        [(a, f"{gen.pools.company[a % 200]} Billing", "2025-01-01 00:00:00") for a in range(1, n_accounts + 1)],
    )
    cur.executemany(
        "INSERT INTO customer (customer_id, account_id, name, created_at) VALUES (%s, %s, %s, %s)",
        [(c, (c - 1) % n_accounts + 1, f"{gen.pools.last[rng.randrange(600)]} Medical Group #{c}",
          "2025-01-01 00:00:00") for c in p.customers],
    )
    conn.commit()
    with tempfile.TemporaryDirectory(prefix="snapsync-seed-") as tmp:
        for ds in DATASETS:
            path = os.path.join(tmp, f"{ds.table}.dat")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write("\t".join(ds.column_names) + "\n")
                for c in p.customers:
                    f.writelines(format_row(row) for row in gen.rows(ds, c))
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{ds.table}` {LOAD_DATA_OPTIONS}", (path,))
            # LOCAL turns data errors into warnings: a generator bug must not pass silently.
            cur.execute("SHOW COUNT(*) WARNINGS")
            (warnings,) = cur.fetchone()
            if warnings:
                cur.execute("SHOW WARNINGS LIMIT 3")
                raise RuntimeError(f"seeding {ds.table} gave {warnings} warning(s): {cur.fetchall()}")
            conn.commit()
            if progress:
                progress(ds.table, p.counts[ds.table] * len(p.customers))
    return p
