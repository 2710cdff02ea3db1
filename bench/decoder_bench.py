"""Raw binlog decode rate: ``mysql-replication`` (pure Python) beside ``mysql-event-stream``
(native C++ core through ctypes), on the same span of the bench binlog.

Both read the span from the server as a replica (file/pos start), decode every row into a
Python dict and count rows; nothing is produced to Kafka and no value is re-encoded. Timed
by wall clock and by the process's CPU time (all threads: the native client reads the
socket in a thread of its own). The span is ``ROWS`` UPDATEs of ``charge`` (``make_backlog``
of ``bench/capture_bench.py``, 1,000 rows per transaction). ``mysql-event-stream`` is
optional: without it only the Python rate is printed.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.decoder_bench`` (``SNAPSYNC_BENCH_DECODER_ROWS``,
default 100,000).
"""

from __future__ import annotations

import os
import struct
import time

from bench.capture_bench import make_backlog, raw_read
from bench.common import bench_settings, report
from snapsync.schemas.catalog import DATASETS
from snapsync.schemas.config import Settings

ROWS = int(os.environ.get("SNAPSYNC_BENCH_DECODER_ROWS", "100000"))
_ROTATE = 4


def python_read(s: Settings, start, end) -> dict:
    cpu = time.process_time()
    rows, elapsed = raw_read(s, start, end)
    return {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed),
            "cpu_ms_per_1000_rows": round((time.process_time() - cpu) * 1e6 / rows, 1)}


def native_read(s: Settings, start, end) -> dict:
    from mysql_event_stream import BinlogClient, CdcEngine

    db = s.db
    client = BinlogClient(host=db.host, port=db.port, user=db.user, password=db.password, server_id=777002,
                          start_binlog_file=start[0], start_binlog_position=start[1], ssl_mode=0)
    engine = CdcEngine()
    engine.set_include_databases([db.database])
    engine.set_include_tables([f"{db.database}.{d.table}" for d in DATASETS])
    cpu = time.process_time()
    t = time.perf_counter()
    client.connect()
    client.start()
    rows = 0
    file = start[0]
    sample = None
    try:
        done = False
        while not done:
            for res in client.poll_batch(256):
                data = res.data
                if data is None:
                    continue
                etype, next_pos = data[4], struct.unpack_from("<I", data, 13)[0]
                if etype == _ROTATE:
                    tail = 4 if res.checksum_enabled else 0
                    file = data[19 + 8:len(data) - tail].decode()
                    continue
                engine.set_checksum_enabled(res.checksum_enabled)
                fed = 0
                while fed < len(data):
                    fed += engine.feed(data[fed:])
                    while (ev := engine.next_event()) is not None:
                        rows += 1
                        sample = sample or ev
                while (ev := engine.next_event()) is not None:
                    rows += 1
                if next_pos and (file, next_pos) >= end:
                    done = True
                    break
    finally:
        elapsed = time.perf_counter() - t
        cpu = time.process_time() - cpu
        client.close()
        engine.close()
    out = {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed),
           "cpu_ms_per_1000_rows": round(cpu * 1e6 / max(rows, 1), 1)}
    if sample is not None:
        # Types only, never values.
        out["value_types"] = {k: type(v).__name__ for k, v in (sample.after or {}).items()}
        out["names_resolved"] = sample.names_resolved
    return out


def main() -> None:
    s = bench_settings()
    start, end, changed = make_backlog(s, ROWS)
    print(f"{changed:,} row changes from {start[0]}:{start[1]} to {end[0]}:{end[1]}")
    result = {"rows": changed, "python": python_read(s, start, end)}
    print("python (mysql-replication):", result["python"])
    try:
        import mysql_event_stream  # noqa: F401
    except ImportError:
        print("mysql-event-stream is not installed: no native figure")
    else:
        result["native"] = native_read(s, start, end)
        print("native (mysql-event-stream):", result["native"])
        result["ratio_native_over_python"] = round(result["native"]["rows_per_s"] / result["python"]["rows_per_s"], 2)
        print("native / python:", result["ratio_native_over_python"])
    report("decoder", result)


if __name__ == "__main__":
    main()
