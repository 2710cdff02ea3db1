"""The soak's writer: a steady random mix of committed changes on the practice database, dated
by the soak's compressed clock (``SET TIMESTAMP``, so each change falls in the simulated
night's window).

Inserts, updates (some rows many times), deletes, rows moved to another customer (of the same
account or the other one), long transactions (statements seconds apart) and one DDL adding a
column, on every incremental data set; and edits and new items of the Data Sync sources' setup
data. Sync targets are never edited here: what they hold is Data Sync's alone, so the rules
give it exactly. Every text value written carries :data:`MARK`, so a log that holds one shows a
row value leaked. A statement refused by an outage (the database restarted) is rolled back,
counted and the writer reconnects: the source itself is the oracle, so nothing is tracked.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Callable

import pymysql

from snapsync.connectors.mysql import connect
from snapsync.schemas.config import DatabaseTarget

log = logging.getLogger("snapsync.soak")

#: In every text value the writer writes (and in no log line).
MARK = "SOAKV"
#: Incremental tables and the text column the writer edits in each.
EDITED = {"patient": "first_name", "claim_professional": "status", "claim_institutional": "status",
          "charge": "modifiers", "credit": "adjustment_code", "activity": "username"}
#: Leaf tables (no foreign key points at them): rows can be deleted and moved.
LEAVES = ("credit", "activity")
#: Setup tables of the Data Sync sources: the edited column, and the natural key made for new items.
SETUP = {"cpt_code": ("description", "code", "Z{:06d}"), "icd_code": ("description", "code", "Z{:06d}"),
         "facility": ("name", "facility_code", "SOAK{:08d}"), "payor": ("name", "payer_code", "SOAK{:08d}"),
         "referring_provider": ("last_name", "npi", "9{:09d}")}
#: The DDL the writer runs once (the catalog's columns are what packages carry).
DDL = "ALTER TABLE `activity` ADD COLUMN `soak_note` VARCHAR(20) NULL"


class Writer(threading.Thread):
    """Commits transactions until stopped; :meth:`quiet` holds it between two transactions.

    Args:
        clock: the simulated time (epoch seconds) each statement is dated with.
        customers: every customer the writer may change.
        sources: Data Sync source customer -> the setup tables it edits there.
    """

    def __init__(self, db: DatabaseTarget, rng: random.Random, clock: Callable[[], float], customers: list[int],
                 sources: dict[int, tuple[str, ...]], rate: float = 8.0) -> None:
        super().__init__(name="soak-writer", daemon=True)
        self.db, self.rng, self.clock, self.customers, self.sources = db, rng, clock, customers, sources
        self.rate = rate
        self.counts: Counter = Counter()
        self.stop_event = threading.Event()
        self._run_ok = threading.Event()
        self._run_ok.set()
        self._idle = threading.Event()
        self._n = 0
        self._ddl_done = False
        self._conn = None

    # -- control ------------------------------------------------------------------------------
    def quiet(self, timeout: float = 60.0) -> None:
        """Hold the writer and wait until its transaction in flight is over."""
        self._run_ok.clear()
        self._idle.wait(timeout)

    def resume(self) -> None:
        self._run_ok.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._run_ok.set()
        self.join(60)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stop_event.is_set():
            if not self._run_ok.is_set():
                self._idle.set()
                self._run_ok.wait()
                continue
            self._idle.clear()
            try:
                self._conn = self._conn or connect(self.db)
                kind = self._transaction(self._conn.cursor())
                self._conn.commit()
                self.counts[kind] += 1
                self.counts["committed"] += 1
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
                self.counts["refused (outage)"] += 1
                log.info("writer: the database is away (%s); reconnecting", type(exc).__name__)
                self._drop()
                time.sleep(0.5)
            except pymysql.err.IntegrityError:
                self.counts["refused (constraint)"] += 1
                self._rollback()
            finally:
                if not self._run_ok.is_set():
                    self._idle.set()
            time.sleep(self.rng.expovariate(self.rate))
        self._drop()
        self._idle.set()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._conn = None

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except Exception:  # noqa: BLE001 - the next transaction reconnects
            self._drop()

    def _at(self, cur) -> None:
        cur.execute("SET TIMESTAMP = %s", (round(self.clock(), 6),))

    def _value(self, width: int) -> str:
        self._n += 1
        return f"{MARK}{self._n % 10 ** max(1, width - len(MARK))}"[:width]

    def _transaction(self, cur) -> str:
        r = self.rng.random()
        if not self._ddl_done and self._n > 20:
            self._ddl_done = True
            self._at(cur)
            cur.execute(DDL)
            return "ddl"
        if r < 0.05:
            for _ in range(self.rng.randint(3, 6)):
                self._one(cur, self.rng.random() * 0.95)
                time.sleep(self.rng.uniform(0.3, 1.2))
            return "long transaction"
        return self._one(cur, r)

    def _one(self, cur, r: float) -> str:
        self._at(cur)
        if r < 0.22:
            return self._setup(cur)
        table = self.rng.choice(sorted(EDITED))
        row = self._pick(cur, table)
        if row is None:
            return "nothing to change"
        if r < 0.55:
            cur.execute(f"UPDATE `{table}` SET `{EDITED[table]}` = %s WHERE id = %s", (self._value(10), row))
            return "update"
        if r < 0.8:
            from snapsync.schemas.catalog import dataset

            cols = ", ".join(f"`{c}`" for c in dataset(table).column_names if c != "id")
            cur.execute(f"INSERT INTO `{table}` ({cols}) SELECT {cols} FROM `{table}` WHERE id = %s", (row,))
            if self.rng.random() < 0.25:  # created and deleted in one window
                cur.execute(f"DELETE FROM `{table}` WHERE id = %s", (cur.lastrowid,))
            return "insert"
        leaf = self.rng.choice(LEAVES)
        row = self._pick(cur, leaf)
        if row is None:
            return "nothing to change"
        if r < 0.88:
            cur.execute(f"DELETE FROM `{leaf}` WHERE id = %s", (row,))
            return "delete"
        cur.execute(f"UPDATE `{leaf}` SET customer_id = %s WHERE id = %s", (self.rng.choice(self.customers), row))
        return "move"

    def _pick(self, cur, table: str, customers: list[int] | None = None):
        customers = customers or self.customers
        cur.execute(f"SELECT id FROM `{table}` WHERE customer_id IN ({','.join(['%s'] * len(customers))}) "
                    "ORDER BY RAND() LIMIT 1", tuple(customers))
        got = cur.fetchone()
        return got[0] if got else None

    def _setup(self, cur) -> str:
        source = self.rng.choice(sorted(self.sources))
        table = self.rng.choice(self.sources[source])
        column, key, new_key = SETUP[table]
        row = self._pick(cur, table, [source])
        if row is None:
            return "nothing to change"
        if self.rng.random() < 0.7:
            cur.execute(f"UPDATE `{table}` SET `{column}` = %s WHERE id = %s", (self._value(20), row))
            return "setup edit"
        from snapsync.schemas.catalog import dataset

        cols = [c for c in dataset(table).column_names if c not in ("id", key)]
        self._n += 1
        cur.execute(f"INSERT INTO `{table}` (`{key}`, {', '.join(f'`{c}`' for c in cols)}) "
                    f"SELECT %s, {', '.join(f'`{c}`' for c in cols)} FROM `{table}` WHERE id = %s",
                    (new_key.format(self._n), row))
        return "setup insert"
