"""Creation of snapsync's control tables in the practice database."""

from __future__ import annotations

from snapsync.schemas.control import ADDED_COLUMNS, CONTROL_DDL, DELTA_DDL, OPS_DDL, SYNC_DDL, USER_DDL


def ensure_control_tables(conn) -> None:
    """Create the control tables, and add the columns later releases added."""
    cur = conn.cursor()
    for ddl in (*CONTROL_DDL, *SYNC_DDL, *DELTA_DDL, *USER_DDL, *OPS_DDL):
        cur.execute(ddl)
    cur.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name LIKE 'snapsync\\_%%'")
    have = {(t.lower(), c.lower()) for t, c in cur.fetchall()}
    for table, column, definition in ADDED_COLUMNS:
        if (table, column) not in have:
            cur.execute(f"ALTER TABLE `{table}` ADD COLUMN `{column}` {definition}")
    conn.commit()
