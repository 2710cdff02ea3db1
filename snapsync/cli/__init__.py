"""The ``snapsync`` command line: one entry point, one module per command group."""

from __future__ import annotations

import os
import sys

import typer

from snapsync.cli import connector, copy, db, local, ops, pipeline, snapshot, soak, sync, usage, users, web
from snapsync.cli.common import err
from snapsync.schemas.errors import ConfigError, RetriableError, SnapsyncError

app = typer.Typer(
    name="snapsync",
    help="Change-data-capture pipeline for multi-tenant medical-billing databases: "
    "recurring data snapshots and Data Sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
pipeline.register(app)
ops.register(app)
usage.register(app)
soak.register(app)
app.add_typer(local.app, name="local")
app.add_typer(db.app, name="db")
app.add_typer(connector.app, name="connector")
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(sync.app, name="sync")
app.add_typer(copy.app, name="copy")
app.add_typer(users.app, name="users")
app.command("web")(web.web)


#: Exit codes, documented in the README ("Exit codes").
EXIT_FAILED_CHECK = 1  # the command ran and reports a failed state (`status` of something not running)
EXIT_BAD_INPUT = 2  # bad input or configuration: the message says what to fix (click's usage errors too)
EXIT_UNAVAILABLE = 3  # a dependency (database, broker, Kafka Connect) is unreachable or not ready: try again
EXIT_FATAL = 4  # the command cannot go on (e.g. the stored binlog position was purged); the message says why
EXIT_INTERNAL = 70  # an unexpected internal error


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_BAD_INPUT
    if isinstance(exc, RetriableError):
        return EXIT_UNAVAILABLE
    return EXIT_FATAL


def main() -> None:
    """Console-script entry point: a known error prints one clear message and exits with its
    code; an unexpected one prints its type only (a message or traceback may hold row values)
    unless ``SNAPSYNC_DEBUG=1``."""
    try:
        app()
    except SnapsyncError as exc:
        from rich.text import Text

        err.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(exit_code(exc))
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("SNAPSYNC_DEBUG") == "1":
            raise
        err.print(f"internal error ({type(exc).__name__}); its details are not printed because they may hold "
                  "data. Run again with SNAPSYNC_DEBUG=1 to see the traceback, and report it.", highlight=False)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
