"""Full snapshot export: the catalog's data sets for chosen customers, read in one
consistent transaction, written as packages (per customer or combined) into one
atomic delivery."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from snapsync.connectors.crypto import Recipient, Sealer
from snapsync.connectors.dialect import Dialect
from snapsync.connectors.mysql import SnapshotPoint, connect
from snapsync.connectors.state import connect_state
from snapsync.schemas import VERSION
from snapsync.control import recipients, usage
from snapsync.control.accounts import check_customers
from snapsync.control.moves import not_owned
from snapsync.schemas.catalog import DATASETS, DataSet
from snapsync.schemas.config import Settings
from snapsync.schemas.control import Container, Format, Kind, Packaging
from snapsync.schemas.errors import ConfigError, RetriableError
from snapsync.schemas.schedule import NY
from snapsync.schemas.events import image_texts
from snapsync.sinks import incremental as inc
from snapsync.sinks.delivery import Delivery, check_root
from snapsync.sinks.formats import get_format
from snapsync.sinks.package import PackageWriter
from snapsync.sinks.server_side import ServerSideReader, server_can_write
from snapsync.sinks.parallel_reader import ParallelClientReader
from snapsync.sinks.source_reader import ConsistentReader, Query
from snapsync.sinks.source_schema import read_datasets, schema_diff

log = logging.getLogger("snapsync.export")



@dataclass
class ExportRequest:
    customers: list[int]
    format: Format = "dat"
    packaging: Packaging = "per-customer"
    container: Container = "folder"
    kind: Kind = "full"
    cutoff: dt.datetime | None = None  # incremental: the window's end (naive UTC)
    watermark_timeout: float = 300.0  # incremental: how long to wait for the pipeline
    #: Incremental: the watermark of ``cutoff`` already reached (the scheduler waits for it
    #: before it records a delivery); None: the export waits for it itself.
    watermark: inc.Watermark | None = None
    only: tuple[str, ...] | None = None  # internal (benchmarks): restrict to these tables
    sample_rows: int | None = None  # the "Download Sample": first N rows of each data set
    keep: int = 1
    grace: float | None = None  # seconds a replaced delivery stays readable (default: sinks.delivery.GRACE)
    server_side: bool = True  # let a same-host server write the rows itself (sinks/server_side.py)
    #: The account the package is for: every customer must be its own when the export starts
    #: and still when the rows have been read (a customer moved meanwhile: nothing is delivered).
    account_id: int | None = None
    #: Usage metering (control/usage.py): ``auto`` counts the delivery as ``manual`` (a sample as
    #: ``sample``, free) right after its atomic switch; ``none``: the caller counts it (the
    #: scheduler, in the transaction that records the delivery).
    meter: Literal["auto", "none"] = "auto"
    #: Encrypt every file to this receiver (``snapshot export --encrypt-to``); None: to the
    #: account's own key when it has one (control/recipients.py), else in the clear.
    recipient: Recipient | None = None


@dataclass
class ExportResult:
    path: Path
    packages: list[dict]
    point: SnapshotPoint
    rows: int
    seconds: float

    def summary(self) -> dict:
        return {"path": str(self.path), "packages": [p["package"] for p in self.packages], "rows": self.rows,
                "seconds": round(self.seconds, 2),
                "source_position": {"file": self.point.file, "pos": self.point.pos, "gtid": self.point.gtid}}


def validate_customers(settings: Settings, customers: list[int], account_id: int | None = None) -> int:
    """Every customer exists and all belong to one account (``account_id`` when given); returns
    the account id.

    Raises:
        ConfigError: naming the unknown customers or the accounts involved.
    """
    with connect(settings.db) as conn:
        return check_customers(conn, customers, what="snapshot export", account_id=account_id,
                               hint="pick existing customer ids of one account (--customers 1,2)")


def _check_still_owned(settings: Settings, req: ExportRequest) -> None:
    """The customers are still the account's once their rows are read (a move committed during
    the export would otherwise deliver the moved customer's rows to its old account).

    Raises:
        RetriableError: one moved; nothing is delivered and the next round drops it.
    """
    if req.account_id is None:
        return
    with connect(settings.db) as conn:
        moved = not_owned(conn, req.account_id, req.customers)
    if moved:
        raise RetriableError(f"customer(s) {', '.join(map(str, moved))} left account {req.account_id} during the "
                             "export: nothing was delivered; the next round delivers without them")


def package_name(packaging: Packaging, customer: int | None) -> str:
    return "combined" if packaging == "combined" else f"customer-{customer}"


def package_groups(req: ExportRequest) -> list[tuple[str, list[int]]]:
    """(package name, its customers)."""
    if req.packaging == "combined":
        return [(package_name("combined", None), list(req.customers))]
    return [(package_name("per-customer", c), [c]) for c in req.customers]


def plan_queries(req: ExportRequest, datasets: tuple[DataSet, ...] = DATASETS,
                 first: list[int] | None = None) -> list[tuple[Query, str, DataSet]]:
    """(query, package name, data set) for every section of the export. ``first``: for an
    incremental export, the customers whose incremental data sets go in full (as upserts);
    the others' come from the staged deltas, not from a query."""
    out = []
    fmt = get_format(req.format)
    for pkg, members in package_groups(req):
        for ds in datasets:
            customers = members
            changes = req.kind == "incremental" and ds.incremental
            if changes:
                customers = [c for c in members if c in (first or [])]
                if not customers:
                    continue
            where = (f"`customer_id` = {int(customers[0])}" if len(customers) == 1
                     else "`customer_id` IN (" + ",".join(str(int(c)) for c in customers) + ")")
            expr = fmt.row_expr(ds, changes=changes)
            order = ", ".join(f"`{c}`" for c in ds.primary_key)
            pk = ds.primary_key[0] if len(ds.primary_key) == 1 and "INT" in ds.column(ds.primary_key[0]).type.upper() \
                else None
            out.append((Query(f"{pkg}/{ds.table}", ds.table, expr, where, order, req.sample_rows,
                              customer=int(customers[0]) if len(customers) == 1 else None, pk=pk), pkg, ds))
    return out


def export_snapshot(settings: Settings, req: ExportRequest, out: Path, *,
                    progress: Callable[[int, int, int], None] | None = None,
                    now: dt.datetime | None = None) -> ExportResult:
    """Write one delivery of full packages under ``out`` and make it current.

    Args:
        progress: called as ``progress(sections_done, sections_total, rows_so_far)``.
    """
    account = validate_customers(settings, req.customers, req.account_id)
    recipient = req.recipient or recipients.for_delivery(settings, account)
    started = time.monotonic()
    incremental = req.kind == "incremental"
    check_root(out)  # a bad --out fails now, not after the watermark wait
    if incremental:
        if req.cutoff is None:
            raise ConfigError("an incremental snapshot needs its cutoff: give --cutoff (e.g. 2026-03-08T00:00)")
        watermark = req.watermark or inc.wait_for_watermark(settings, req.cutoff, req.watermark_timeout)
        covered = inc.covered_order(watermark)
    created = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    kind = "sample" if req.sample_rows is not None else req.kind
    # The root's lock is held from here to the recorded delivery: a second export into the
    # same folder waits, and reads the state this one leaves.
    delivery = Delivery(out, f"{created:%Y%m%dT%H%M%SZ}-{kind}-{req.format}", keep=req.keep, grace=req.grace)
    try:
        first, changes = _staged(settings, req, out) if incremental else ([], {})
        catalog = DATASETS if req.only is None else tuple(d for d in DATASETS if d.table in req.only)
        with connect(settings.db) as conn:
            dialect = Dialect.of(conn)
            datasets = read_datasets(conn, catalog)  # as the source has them: types travel with the data
        sections = plan_queries(req, datasets, first=first)
        reader = _reader(settings, req, dialect, delivery.staging, sealed=recipient is not None)
    except BaseException:
        delivery.abort()
        raise
    packages = _Packages(delivery.staging, req, changes, recipient, settings.home, first)
    try:
        point, rows = packages.stream(reader, sections, progress)
        _check_schema_unchanged(settings, datasets)
        _check_still_owned(settings, req)
        if incremental:
            packages.changes_only(datasets)
        meta = _meta(req, kind, account, point, created, dialect.name)
        manifests = packages.finish(meta, first)
        path = delivery.commit(release=False)
        try:
            if incremental:
                with connect_state(settings) as conn:
                    inc.record_delivered(conn, inc.delivery_key(out), req.customers, req.cutoff, covered,
                                         broker=(settings.topic_prefix, watermark.generation))
            if req.meter == "auto":
                _count_usage(settings, kind, account, created, path, manifests, rows, req)
        finally:
            delivery.release()
    except BaseException:
        packages.abort()
        delivery.abort()
        raise
    result = ExportResult(path, manifests, point, rows, time.monotonic() - started)
    log.info("delivered %s: %d package(s), %d rows, %.1fs", path, len(manifests), rows, result.seconds)
    return result


def _staged(settings: Settings, req: ExportRequest, out: Path) -> tuple[list[int], dict[str, inc.Changes]]:
    """An incremental export's customers sent in full (new to this folder) and, per package,
    the staged changes of the others."""
    with connect_state(settings) as state, connect(settings.db) as source:
        done = inc.delivered_customers(state, inc.delivery_key(out), req.cutoff)
        first = [c for c in req.customers if c not in done]
        changes = {pkg: inc.staged_changes(state, source, {c: done[c] for c in members if c in done}, req.cutoff,
                                           members)
                   for pkg, members in package_groups(req)}
    return first, changes


class _Packages:
    """The export's package writers, each made as its first section arrives; sealed to
    ``recipient`` when there is one."""

    def __init__(self, staging: Path, req: ExportRequest, changes: dict[str, inc.Changes],
                 recipient: Recipient | None, home: Path, first: list[int]) -> None:
        self.staging, self.req, self.changes, self.recipient, self.home = staging, req, changes, recipient, home
        self.first = first  # incremental: customers whose incremental data sets come in full
        self.incremental = req.kind == "incremental"
        self.customers_of = {package_name("per-customer", c): [c] for c in req.customers}
        self.customers_of["combined"] = list(req.customers)
        self.writers: dict[str, PackageWriter] = {}

    def writer(self, pkg: str) -> PackageWriter:
        w = self.writers.get(pkg)
        if w is None:
            w = self.writers[pkg] = PackageWriter(
                self.staging / pkg, pkg, self.req.format, self.customers_of[pkg],
                seal=Sealer(self.recipient) if self.recipient else None, sign_home=self.home)
        return w

    def stream(self, reader, sections: list[tuple[Query, str, DataSet]],
               progress: Callable[[int, int, int], None] | None) -> tuple[SnapshotPoint, int]:
        """Every section the reader yields into its package; (the snapshot's position, rows)."""
        point: SnapshotPoint | None = None
        rows = 0
        for item in reader.read([q for q, _p, _d in sections]):
            if item[0] == "pos":
                point = item[1]
                continue
            tag, i, data = item
            _q, pkg, ds = sections[i]
            w = self.writer(pkg)
            if ds.table not in w.entries:
                w.begin(ds, changes=self.incremental and ds.incremental)
                if self.incremental and ds.incremental:  # a section read here: customers in full
                    w.replace_customers(ds, [c for c in self.first if c in w.customers])
                    _write_changes(w, ds, self.changes[pkg])
            if tag == "data":
                rows += w.write_lines(ds, data, count=not reader.reports_rows)
            else:
                if data is not None:  # the reader's row count of the section
                    w.add_rows(ds, data)
                    rows += data
                w.end(ds)
                if progress:
                    progress(i + 1, len(sections), rows)
        assert point is not None, "the export stream carried no snapshot position"
        return point, rows

    def changes_only(self, datasets: tuple[DataSet, ...]) -> None:
        """The incremental data sets whose only content is the staged changes (no section read)."""
        for pkg, _members in package_groups(self.req):
            w = self.writer(pkg)
            for ds in datasets:
                if ds.incremental and ds.table not in w.entries:
                    w.begin(ds, changes=True)
                    _write_changes(w, ds, self.changes[pkg])
                    w.end(ds)

    def finish(self, meta: dict, first: list[int]) -> list[dict]:
        """Each package's manifest written (and its container made); the manifests."""
        return [w.finish({**meta, **({"full_for_customers": [c for c in first if c in w.customers]}
                                     if self.incremental else {})}, self.req.container)
                for w in self.writers.values()]

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()


def _meta(req: ExportRequest, kind: str, account: int, point: SnapshotPoint, created: dt.datetime,
          server: str) -> dict:
    """What every manifest of the delivery says about it."""
    return {
        "snapsync_version": VERSION,
        "kind": kind,
        **({"cutoff_utc": req.cutoff.isoformat() + "Z",
            "incremental_data_sets": [d.table for d in DATASETS if d.incremental],
            "op_column": "_op (U: upsert, D: delete by primary key)"} if req.kind == "incremental" and req.cutoff
           else {}),
        "packaging": req.packaging,
        "account_id": account,
        "as_of_utc": point.server_time_utc.replace(" ", "T") + "Z",
        "as_of_local": _ny(point.server_time_utc),
        "created_utc": created.isoformat().replace("+00:00", "Z"),
        "source_position": {"file": point.file, "pos": point.pos, "gtid": point.gtid},
        # How the snapshot's position was made exact (connectors/dialect.py): without any lock,
        # or with an instant of global read lock.
        "snapshot_method": point.method,
        "source_server": server,
    }


def _reader(settings: Settings, req: ExportRequest, dialect: Dialect, staging: Path, *, sealed: bool):
    """How the rows are read: a same-host server writes them itself; otherwise the server
    streams them to clients here, in several sessions (spooled to private part files) or,
    for a sealed package (nothing in the clear on disk), in one session streamed straight
    into the encrypting files."""
    parts = staging / ".parts"
    if sealed:
        return ConsistentReader(settings.db, dialect)
    if req.server_side and server_can_write(settings.db, staging):
        return ServerSideReader(settings.db, parts, dialect, sessions=2)
    return ParallelClientReader(settings.db, dialect, parts, sessions=2)


def _count_usage(settings: Settings, kind: str, account: int, created: dt.datetime, path: Path,
                 manifests: list[dict], rows: int, req: ExportRequest) -> None:
    """A manual delivery (or a free sample) in the invoice's usage, once: keyed by this
    export's own id (nothing replays a manual export; a crash between the switch and this
    commit leaves it uncounted, docs/decisions.md)."""
    used = usage.delivery_event(
        "sample" if kind == "sample" else "manual", f"export:{uuid.uuid4().hex}", account, usage.month_of(created),
        manifests, rows, sum(f["bytes"] for p in manifests for f in p["files"]),
        {"delivery": path.name, "kind": kind, "format": req.format, "customers": list(req.customers)})
    with connect_state(settings) as conn:
        counted = usage.record(conn.cursor(), used)
        conn.commit()
    if counted:
        usage.observe([used])


def _check_schema_unchanged(settings: Settings, datasets: tuple[DataSet, ...]) -> None:
    """The columns the files were written with are still the source's: otherwise the DDL and
    typed manifest could describe files written under another schema.

    Raises:
        RetriableError: an ALTER TABLE ran during the export (nothing is delivered).
    """
    with connect(settings.db) as conn:
        now = read_datasets(conn, datasets)
    changed = [f"{old.table} ({schema_diff(old, new)})" for old, new in zip(datasets, now) if old != new]
    if changed:
        raise RetriableError(f"the source schema changed during the export: {', '.join(changed)}; nothing was "
                             "delivered, run the export again")


def _write_changes(w: PackageWriter, ds: DataSet, changes: inc.Changes) -> None:
    """The staged upserts and deletes of one incremental data set."""
    w.write_upserts(ds, [image_texts(ds, img) for img in changes.upserts.get(ds.table, [])])
    w.write_deletes(ds, changes.deletes.get(ds.table, []))
    w.entries[ds.table].quarantined += changes.quarantined.get(ds.table, 0)


def _ny(utc_text: str) -> str:
    t = dt.datetime.fromisoformat(utc_text).replace(tzinfo=dt.timezone.utc)
    return t.astimezone(NY).isoformat()
