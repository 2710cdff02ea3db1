"""The Python binlog decoder of ``snapsync capture`` (the default): ``mysql-replication`` reads
and decodes; capture encodes each value with ``schemas.events.encode_value``. The other
decoder, behind the same :func:`open_reader`, is ``connectors/native_decoder.py``."""

from __future__ import annotations

from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from snapsync.connectors import native_decoder

_FSP_TYPES = {FIELD_TYPE.DATETIME2, FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIME2}


def open_reader(decoder: str, db, *, server_id: int, log_file: str, log_pos: int, schemas: list[str],
                tables: list[str]):
    """A blocking replica from ``log_file:log_pos`` (``db``: the database settings) giving
    capture its events through ``fetchone()`` (rows of ``tables`` in ``schemas``): ``python``
    or ``native``."""
    if decoder == "native":
        return native_decoder.NativeBinlogReader(
            host=db.host, port=db.port, user=db.user, password=db.password, server_id=server_id,
            log_file=log_file, log_pos=log_pos, only_schemas=list(schemas), only_tables=tables)
    return BinLogStreamReader(
        connection_settings={"host": db.host, "port": db.port, "user": db.user, "password": db.password},
        server_id=server_id,
        log_file=log_file, log_pos=log_pos, resume_stream=True, blocking=True,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent,
                     MariadbGtidEvent, GtidEvent, HeartbeatLogEvent],
        only_schemas=list(schemas),
        only_tables=tables,
        slave_heartbeat=1,
        enable_logging=False,
    )


def column_encoders(columns) -> list[tuple[str, dict[str, Any]]]:
    """``encode_value`` keywords per column of a mysql-replication rows event."""
    enc = []
    for c in columns:
        kw: dict[str, Any] = {}
        if c.type in _FSP_TYPES:
            kw["fsp"] = c.fsp
        if c.type == FIELD_TYPE.TIMESTAMP2:
            kw["is_timestamp"] = True
        if c.type == FIELD_TYPE.NEWDECIMAL:
            kw["scale"] = c.decimals
        enc.append((c.name, kw))
    return enc
