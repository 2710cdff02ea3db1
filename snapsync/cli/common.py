"""What every command group shares: the consoles, the common options, settings loading."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:  # the settings (pydantic) load when a command runs, not when the CLI starts
    from snapsync.schemas.config import Settings

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="TOML config file (keys database_url, kafka_bootstrap, topic_prefix, home).",
                 envvar="SNAPSYNC_CONFIG", show_envvar=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
MetricsPortOpt = Annotated[
    Optional[int],
    typer.Option("--metrics-port", help="Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on "
                 "this port (docs/operations.md).", min=0, max=65535),
]
MetricsHostOpt = Annotated[
    str, typer.Option("--metrics-host", help="Address of the metrics port (0.0.0.0 for a Prometheus on another "
                      "machine).")
]


class lazy:  # noqa: N801 - reads like the module it stands for
    """A module imported on first use: ``users = lazy("snapsync.control.users")`` at the top of a
    command module keeps the CLI's start free of what only its commands need (pydantic,
    pymysql, argon2...); ``tests/unit/test_cli_start.py`` checks the start's imports."""

    def __init__(self, name: str) -> None:
        self._name, self._module = name, None

    def __getattr__(self, attr: str):
        if self._module is None:
            import importlib

            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


def settings(config: Path | None) -> Settings:
    """Load settings or stop with the message of every bad key."""
    from snapsync.schemas.config import load_settings

    return load_settings(config)


def home_dir(config: Path | None) -> Path:
    """The data folder, without requiring database and broker settings.

    Raises:
        ConfigError: the configured home is not a usable folder path.
    """
    from snapsync.schemas.config import CONFIG_FIXES, check_home, configured_values
    from snapsync.schemas.errors import ConfigError

    try:
        return check_home(configured_values(config).get("home", ".snapsync"))
    except ValueError as exc:
        raise ConfigError(f"SNAPSYNC_HOME (home) {exc}: {CONFIG_FIXES['home']}") from None


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_ID_LIST = re.compile(r"[0-9]{1,10}(,[0-9]{1,10})*")


def customer_list(text: str) -> list[int]:
    """``1,2,3``: ASCII digits and commas only (no ``1_0``, no full-width digits, no empty
    items), each id at most 10 digits."""
    cleaned = text.replace(" ", "")
    if not _ID_LIST.fullmatch(cleaned):
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of customer ids (e.g. 1,2,3)") from None
    return [int(x) for x in cleaned.split(",")]
