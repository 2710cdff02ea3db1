"""`snapsync snapshot`: exports, the sample, settings and the scheduler."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from snapsync.cli.common import (
    ConfigOpt,
    JsonOpt,
    MetricsHostOpt,
    MetricsPortOpt,
    customer_list,
    err,
    out,
    settings,
    setup_logging,
)

app = typer.Typer(help="Recurring data snapshots: export, sample, settings, scheduler.", no_args_is_help=True)

FormatOpt = Annotated[str, typer.Option("--format", help="dat (tab-delimited .DAT files), mysql (a .sql dump) or parquet (typed .parquet files).")]
PackagingOpt = Annotated[str, typer.Option("--packaging", help="per-customer (one package each) or combined.")]
ContainerOpt = Annotated[str, typer.Option("--container", help="folder or zip.")]
EncryptOpt = Annotated[Optional[Path], typer.Option("--encrypt-to", help="A file with the receiver's OpenPGP public key (armored or binary) or age recipient (age1...): every file is encrypted to it.")]


def read_recipient(path: Path):
    """The recipient in the file at ``path`` (checked: connectors/crypto.py).

    Raises:
        ConfigError: the file cannot be read, or its key is not usable; the message says why.
    """
    from snapsync.connectors.crypto import parse_recipient
    from snapsync.schemas.errors import ConfigError

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--encrypt-to {path}: cannot read it ({exc.strerror}); give a file holding the "
                          "receiver's public key") from None
    if len(data) > 1_000_000:
        raise ConfigError(f"--encrypt-to {path}: {len(data):,} bytes is not one public key; give the receiver's "
                          "public key only")
    try:
        return parse_recipient(data)
    except ConfigError as exc:
        raise ConfigError(f"--encrypt-to {path}: {exc}") from None


def _run_export(config, customers: str, format_: str, packaging: str, container: str, dest: str,
                json_: bool, sample: int | None, keep: int = 1, kind: str = "full", cutoff: str | None = None,
                watermark_timeout: float = 300.0, encrypt_to: Path | None = None) -> None:
    from typing import get_args

    from snapsync.schemas.control import Container, Format, Kind, Packaging
    from snapsync.schemas.errors import ConfigError
    from snapsync.sinks.delivery import check_root
    from snapsync.sinks.export import ExportRequest, export_snapshot

    problems = []
    for option, value, vocabulary in (("--format", format_, Format), ("--packaging", packaging, Packaging),
                                      ("--container", container, Container), ("--kind", kind, Kind)):
        words = get_args(vocabulary)  # the one vocabulary: schemas/control.py
        if value not in words:
            problems.append(f"{option} {value!r}: use {', '.join(words)}")
    cutoff_utc = None
    if kind == "incremental":
        from snapsync.schemas.schedule import parse_instant

        if not cutoff:
            problems.append("--cutoff is required with --kind incremental (e.g. --cutoff 2026-03-08T00:00)")
        else:
            try:
                cutoff_utc = parse_instant(cutoff).replace(tzinfo=None)
            except ValueError as exc:
                problems.append(f"--cutoff: {exc}")
    elif cutoff:
        problems.append("--cutoff goes with --kind incremental only (a full snapshot is as of its start)")
    try:
        dest = str(check_root(dest))
    except ConfigError as exc:
        problems.append(f"--out: {exc}")
    recipient = None
    if encrypt_to is not None:
        try:
            recipient = read_recipient(encrypt_to)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("invalid export options:\n  - " + "\n  - ".join(problems))
    s = settings(config)
    req = ExportRequest(customers=customer_list(customers), format=format_, packaging=packaging,
                        container=container, sample_rows=sample, keep=keep, kind=kind, cutoff=cutoff_utc,
                        watermark_timeout=watermark_timeout, recipient=recipient)
    if json_ or not sys.stderr.isatty():
        result = export_snapshot(s, req, dest)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("exporting", total=None)
            result = export_snapshot(s, req, dest, progress=lambda done, total, rows: bar.update(
                task, completed=done, total=total, description=f"exporting ({rows:,} rows)"))
    if json_:
        print(json.dumps(result.summary()))
    else:
        out.print(f"delivered {len(result.packages)} package(s), {result.rows:,} rows in {result.seconds:.1f}s")
        out.print(f"current delivery: {Path(dest) / 'current'} -> {result.path}")


@app.command("export")
def snapshot_export(
    customers: Annotated[str, typer.Option(help="Customer ids, comma-separated (one account).")],
    out: Annotated[str, typer.Option(help="Delivery folder: the package appears under OUT/current.")],
    format_: FormatOpt = "dat",
    kind: Annotated[str, typer.Option(help="full, or incremental (changed rows of Patient, Claims, Charge, Credit, Activity since this folder's last delivery).")] = "full",
    cutoff: Annotated[Optional[str], typer.Option(help="Incremental: the window's end (ISO; no offset = New York time).")] = None,
    watermark_timeout: Annotated[float, typer.Option(help="Incremental: seconds to wait for the pipeline to reach the cutoff.", min=0)] = 300.0,
    packaging: PackagingOpt = "per-customer",
    container: ContainerOpt = "folder",
    keep: Annotated[int, typer.Option(help="Deliveries kept under OUT/deliveries (default 1: replace).", min=1)] = 1,
    encrypt_to: EncryptOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Export a snapshot package of every data set for the customers, delivered atomically.

    Incremental: needs `snapsync capture` and `snapsync worker` running; the first delivery
    to a folder (and the first for a customer new to it) carries that customer in full.
    Encrypted to --encrypt-to, or else to the account's own key when it has one.
    """
    _run_export(config, customers, format_, packaging, container, out, json_, None, keep, kind, cutoff,
                watermark_timeout, encrypt_to)


@app.command("sample")
def snapshot_sample(
    customers: Annotated[str, typer.Option(help="Customer ids, comma-separated (one account).")],
    out: Annotated[str, typer.Option(help="Where the sample package goes (OUT/current).")],
    format_: FormatOpt = "dat",
    packaging: PackagingOpt = "per-customer",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The "Download Sample": the first five rows of each data set, in the chosen format."""
    _run_export(config, customers, format_, packaging, "folder", out, json_, 5)


@app.command("configure")
def snapshot_configure(
    account: Annotated[int, typer.Option(help="Account id.")],
    customers: Annotated[Optional[str], typer.Option(help="Customer ids of the account, comma-separated.")] = None,
    format_: Annotated[Optional[str], typer.Option("--format", help="dat, mysql or parquet.")] = None,
    kind: Annotated[Optional[str], typer.Option(help="full or incremental.")] = None,
    packaging: Annotated[Optional[str], typer.Option(help="per-customer or combined.")] = None,
    container: Annotated[Optional[str], typer.Option(help="folder or zip.")] = None,
    keep: Annotated[Optional[int], typer.Option(help="Deliveries kept (default 1).")] = None,
    encrypt_to: EncryptOpt = None,
    no_encryption: Annotated[bool, typer.Option("--no-encryption", help="Deliver in the clear again (forget the account's key).")] = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Enable (or change) an account's recurring snapshots; every change is audited.

    With --encrypt-to, every delivery for the account (nightly, manual, sample) is encrypted
    to that key from now on; given alone, only the key changes.
    """
    from snapsync.control import recipients, snapshot_settings
    from snapsync.schemas.errors import ConfigError

    if encrypt_to is not None and no_encryption:
        raise ConfigError("give --encrypt-to FILE or --no-encryption, not both")
    recipient = read_recipient(encrypt_to) if encrypt_to is not None else None
    s = settings(config)
    others = (customers, format_, kind, packaging, container, keep)
    new = None
    if any(v is not None for v in others) or (recipient is None and not no_encryption):
        new = snapshot_settings.configure(s, account, enabled=True,
                                          customers=None if customers is None else tuple(customer_list(customers)),
                                          format=format_, kind=kind, packaging=packaging, container=container,
                                          keep=keep)
    if recipient is not None:
        recipients.set_key(s, account, recipient.key)
    elif no_encryption:
        recipients.clear(s, account)
    _print_settings(s, account, new, json_)


def _print_settings(s, account: int, cfg, json_: bool) -> None:
    """An account's settings and whom its packages are encrypted to (fingerprint only)."""
    from snapsync.control import destinations, recipients, snapshot_settings

    cfg = cfg or snapshot_settings.get(s, account)
    key = recipients.get(s, account)
    dest = destinations.get(s, account)
    extra = {"encryption": key.public() if key else None, "destination": dest.public() if dest else None}
    data = {**cfg.model_dump(), **extra} if cfg else None
    if json_:  # null: neither settings nor a key
        print(json.dumps(data or ({"account_id": account, **extra} if key or dest else None)))
    elif data:
        out.print(f"account {account}: {data}")
    else:
        out.print(f"account {account} has no snapshot settings"
                  + (f"; its packages are encrypted to {key.fingerprint}" if key else ""))


@app.command("show")
def snapshot_show(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None,
                  json_: JsonOpt = False) -> None:
    """Show an account's snapshot settings (and the fingerprint of the key its packages are encrypted to)."""
    _print_settings(settings(config), account, None, json_)


@app.command("destination")
def snapshot_destination(
    account: Annotated[int, typer.Option(help="Account id.")],
    sftp: Annotated[Optional[str], typer.Option("--sftp", help="Ship each nightly delivery to sftp://user@host[:port]/path as well.")] = None,
    host_key: Annotated[Optional[str], typer.Option("--host-key", help="The server's public host key, pinned: the line `ssh-keyscan -p PORT HOST` prints (or a file holding it).")] = None,
    identity: Annotated[Optional[Path], typer.Option("--identity", help="A private SSH key to log in with (kept 0600, never shown again); default: one snapsync makes for the account.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop shipping (the login key is deleted).")] = False,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ship the account's nightly deliveries to an SFTP drop, or show where they go.

    Prints the public key the receiver adds to the drop's authorized keys.
    """
    from snapsync.control import destinations
    from snapsync.schemas.errors import ConfigError

    s = settings(config)
    if remove:
        if sftp or host_key or identity:
            raise ConfigError("--remove goes alone")
        gone = destinations.clear(s, account)
        out.print(f"account {account}: " + ("deliveries are no longer shipped" if gone else "had no destination"))
        return
    if sftp:
        if not host_key:
            raise ConfigError("--sftp needs --host-key: the server's public host key, as `ssh-keyscan -p PORT HOST` "
                              "prints it (verify it with the receiver)")
        line = Path(host_key).read_text() if Path(host_key).is_file() else host_key
        try:
            given = identity.read_bytes() if identity else None
        except OSError as exc:
            raise ConfigError(f"--identity {identity}: cannot read it ({exc.strerror})") from None
        dest = destinations.set_sftp(s, account, sftp, line, identity=given)
    elif host_key or identity:
        raise ConfigError("--host-key and --identity go with --sftp URL")
    else:
        dest = destinations.get(s, account)
    data = dest.public() if dest else None
    if json_:
        print(json.dumps(data))
    elif data:
        out.print(f"account {account}: deliveries shipped to {data['url']} (host key {data['host_key']})")
        out.print("add this key to the drop's authorized keys:")
        print(data["public_key"])
    else:
        out.print(f"account {account}: deliveries stay on this server (no destination)")


@app.command("signing-key")
def snapshot_signing_key(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Print snapsync's public signing key, for receivers of encrypted packages.

    They import it once to check each package's signed digest (docs/loading.md). Made on first
    use, under SNAPSYNC_HOME/keys.
    """
    from snapsync.connectors.crypto import signing_key

    fpr, public = signing_key(settings(config).home)
    if json_:
        print(json.dumps({"fingerprint": fpr, "public_key": public}))
    else:
        sys.stdout.write(public)
        err.print(f"snapsync's signing key {fpr}")


@app.command("disable")
def snapshot_disable(account: Annotated[int, typer.Option(help="Account id.")], config: ConfigOpt = None) -> None:
    """Disable an account's recurring snapshots (settings are kept; audited)."""
    from snapsync.control import snapshot_settings

    snapshot_settings.disable(settings(config), account)
    out.print(f"account {account}: recurring snapshots disabled")


@app.command("scheduler")
def snapshot_scheduler(
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="With --once: the round's time (ISO; no offset = New York).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.", min=0.1)] = 30.0,
    clock_file: Annotated[Optional[Path], typer.Option("--clock-file", help="Rehearsal: take each round's time from this file (one ISO instant, rewritten by whoever drives the rehearsal; `snapsync soak` runs a night a minute this way) instead of the wall clock.")] = None,
    jobs: Annotated[bool, typer.Option("--jobs", help="Publish one job per due account on <prefix>.export.jobs for `snapsync export-worker` processes, instead of exporting here.")] = False,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Deliver each enabled account's snapshot at its New York time (full as of 01:00, ready by 09:00).

    Any number of schedulers may run: each slot is claimed once in the database. A slot not
    delivered by 09:00 New York gets one "snapshot late" notification.
    """
    import datetime as dt
    import threading

    from snapsync.connectors.kafka import producer
    from snapsync.schemas.errors import ConfigError
    from snapsync.schemas.schedule import parse_instant
    from snapsync.sinks.scheduler import file_clock, run_forever, run_round, wall_clock

    setup_logging()
    s = settings(config)
    prod = producer(s.kafka_bootstrap)
    if once:
        try:
            now = parse_instant(as_of) if as_of else dt.datetime.now(dt.timezone.utc)
        except ValueError as exc:
            raise ConfigError(f"--as-of: {exc}") from None
        done = run_round(s, now, producer=prod, publish=jobs)
        if json_:
            print(json.dumps(done, default=str))
        else:
            print(f"{len(done)} export job(s) published" if jobs else f"{len(done)} delivery(ies) made")
        return
    if as_of:
        raise ConfigError("--as-of goes with --once")
    import signal as _signal

    from snapsync.connectors.metrics import Health, Heartbeat, serve
    from snapsync.control.processes import Beacon

    stop = threading.Event()
    for sig in (_signal.SIGTERM, _signal.SIGINT):
        _signal.signal(sig, lambda *_: stop.set())
    # A round that exports here may take as long as its exports; a publishing round is quick.
    loop = Heartbeat("the round loop", stale_after=3 * interval + (60 if jobs else 3600))
    last = {"ok": None}

    def on_round(ok: bool) -> None:
        loop.beat()
        last["ok"] = ok

    def ready() -> tuple[bool, str]:
        if last["ok"] is None:
            return False, "no round finished yet"
        return bool(last["ok"]), "the last round ran" if last["ok"] else "the last round could not reach the database or broker"

    server = serve(metrics_port, Health(live={"rounds": loop.check}, ready={"round": ready}), metrics_host) \
        if metrics_port is not None else None
    beacon = Beacon(s, "scheduler", metrics_port=metrics_port).start()
    from snapsync.control.broker import watch

    watch(s, "scheduler")  # a broker replaced: recovered from (queued jobs published again), started again
    try:
        run_forever(s, stop, interval, producer=prod, publish=jobs, owner=beacon.id, on_round=on_round,
                    clock=file_clock(clock_file) if clock_file is not None else wall_clock)
    finally:
        beacon.stop()
        if server is not None:
            server.close()
