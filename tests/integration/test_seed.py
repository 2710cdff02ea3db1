"""The generator is deterministic and every hard-case value survives the database."""

from __future__ import annotations

from snapsync.connectors.mysql import connect
from snapsync.schemas.catalog import DATASETS
from snapsync.seed import HARD_DATES, HARD_DATETIMES, HARD_MONEY, HARD_TEXTS, plan, seed
from tests.conftest import new_database, settings_for


def _checksums(settings) -> dict[str, int]:
    with connect(settings.db) as conn:
        cur = conn.cursor()
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{d.table}`" for d in DATASETS) + ", customer, account")
        return {name.split(".")[-1]: value for name, value in cur.fetchall()}


def test_same_arguments_same_data_other_seed_other_data(base_settings):
    sums = []
    for name, seed_value in (("det_a", 5), ("det_b", 5), ("det_c", 6)):
        s = settings_for(base_settings, name)
        
        new_database(s)
        with connect(s.db) as conn:
            p = seed(conn, customers=2, scale=0.003, seed_value=seed_value)
        sums.append(_checksums(s))
    assert sums[0] == sums[1]
    assert sums[0] != sums[2]
    with connect(settings_for(base_settings, "det_a").db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM patient")
        assert cur.fetchone()[0] == p.counts["patient"] * 2


def test_hard_cases_round_trip_through_the_database(seeded_db):
    with connect(seeded_db.db) as conn:
        cur = conn.cursor()
        cur.execute("SELECT notes FROM patient WHERE customer_id = 1 ORDER BY id LIMIT %s", (len(HARD_TEXTS),))
        assert [r[0] for r in cur.fetchall()] == list(HARD_TEXTS)
        cur.execute("SELECT CAST(date_of_birth AS CHAR) FROM patient WHERE customer_id = 2 ORDER BY id LIMIT 3")
        assert tuple(r[0] for r in cur.fetchall()) == HARD_DATES
        cur.execute("SELECT CAST(occurred_at AS CHAR) FROM activity WHERE customer_id = 1 ORDER BY id LIMIT %s",
                    (len(HARD_DATETIMES),))
        assert tuple(r[0] for r in cur.fetchall()) == HARD_DATETIMES
        cur.execute("SELECT CAST(balance AS CHAR) FROM patient WHERE customer_id = 3 ORDER BY id")
        balances = {r[0] for r in cur.fetchall()}
        assert set(HARD_MONEY) <= balances
        # NULL next to the empty string, both present
        cur.execute("SELECT SUM(notes IS NULL), SUM(notes = '') FROM patient")
        nulls, empties = cur.fetchone()
        assert nulls >= 1 and empties >= 1


def test_every_table_has_rows_for_every_customer(seeded_db):
    with connect(seeded_db.db) as conn:
        cur = conn.cursor()
        for d in DATASETS:
            cur.execute(f"SELECT COUNT(DISTINCT customer_id) FROM `{d.table}`")
            assert cur.fetchone()[0] == 3, d.table


def test_plan_reaches_a_million_rows_at_benchmark_scale():
    assert 950_000 <= plan(14, 1.0).total_rows <= 1_100_000
