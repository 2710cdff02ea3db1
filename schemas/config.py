"""Configuration: one frozen, typed model read from the environment, a config file,
or the running local stack, in that order of precedence.

Keys (environment name / config-file key):

* ``SNAPSYNC_DATABASE_URL`` / ``database_url`` - ``mysql://user:password@host:port/database``
* ``SNAPSYNC_KAFKA_BOOTSTRAP`` / ``kafka_bootstrap`` - ``host:port[,host:port...]``
* ``SNAPSYNC_TOPIC_PREFIX`` / ``topic_prefix`` - topic prefix, default ``practice``
* ``SNAPSYNC_HOME`` / ``home`` - the project's data folder (local stack, deliveries), default ``.snapsync``
* ``SNAPSYNC_CAPTURE`` / ``capture`` - what captures the binlog: ``embedded`` (``snapsync capture``,
  the default) or ``debezium`` (the Debezium connector on Kafka Connect); the incremental
  watermark reads that capture's committed position
* ``SNAPSYNC_CONNECTOR`` / ``connector`` - the capture's name: the embedded capture's stored
  position and heartbeat row, or the Debezium connector's name on Kafka Connect; default ``snapsync``
* ``SNAPSYNC_DECODER`` / ``decoder`` - the embedded capture's binlog decoder: ``native``
  (``mysql-event-stream``'s C++ core, the default: 3x the rows/s) or ``python``
  (``mysql-replication``); the events are the same
* ``SNAPSYNC_CONNECT_URL`` / ``connect_url`` - Kafka Connect's REST URL (``http://host:8083``);
  needed with ``capture = "debezium"``
* ``SNAPSYNC_STATE_URL`` / ``state_url`` - ``mysql://user:password@host:port/schema`` of the
  database that holds snapsync's own state (``schemas/state.py``); default: schema
  ``snapsync`` on the practice database's server, with its login. Never the practice schema.
* ``SNAPSYNC_SIGNAL_SCHEMA`` / ``signal_schema`` - the schema of snapsync's on the source server
  for what must travel through its binlog or commit with a write there (heartbeat, watermark
  probe, Debezium's signals, Data Sync's marks); default ``snapsync_signal``. One per practice
  database: give each its own when a server holds several.

The config file is TOML (``--config FILE``, or ``SNAPSYNC_CONFIG``, or ``./snapsync.toml``).
When neither environment nor file names the database or broker, the settings that
``snapsync local up`` wrote for the running local stack are used (the demo default).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from snapsync.schemas.errors import ConfigError, validation_message

CONFIG_FIXES = {
    "database_url": "set SNAPSYNC_DATABASE_URL (or database_url in the config file) to "
    "mysql://user:password@host:port/database, or run `snapsync local up`",
    "kafka_bootstrap": "set SNAPSYNC_KAFKA_BOOTSTRAP (or kafka_bootstrap in the config file) to "
    "host:port[,host:port...], or run `snapsync local up`",
    "topic_prefix": "use letters, digits, '_' or '-' (e.g. practice)",
    "home": "give a folder path the user can write",
    "capture": "use embedded or debezium",
    "decoder": "use native or python",
    "connector": "use letters, digits, '_', '.' or '-' (at most 64)",
    "connect_url": "give Kafka Connect's REST URL, e.g. http://connect:8083",
    "state_url": "give mysql://user:password@host:port/schema of a schema of snapsync's own (default: "
    "schema snapsync on the practice database's server), never the practice schema",
    "signal_schema": "give a schema name of snapsync's own on the source server (letters, digits, _ or $), "
    "other than the practice schema and the state store's, e.g. snapsync_signal",
}

#: The state store's schema when ``state_url`` is not set (on the practice database's server).
DEFAULT_STATE_SCHEMA = "snapsync"
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")

_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class DatabaseTarget:
    """Connection parameters parsed from a ``mysql://`` URL."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect`` (no database selected)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "charset": "utf8mb4",
        }

    def redacted(self) -> str:
        """The URL without its password, safe to print."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def same_server(self, other: DatabaseTarget) -> bool:
        """Whether both name the same server (loopback spellings are one host)."""
        loop = {"127.0.0.1", "localhost", "::1"}
        same_host = self.host == other.host or (self.host in loop and other.host in loop)
        return same_host and self.port == other.port

    def with_database(self, database: str) -> DatabaseTarget:
        return DatabaseTarget(self.host, self.port, self.user, self.password, database)


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse ``mysql://user:password@host:port/database``.

    Raises:
        ValueError: with the part that is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ValueError(f"scheme must be mysql:// (got {parts.scheme or 'none'!r})")
    if not parts.hostname:
        raise ValueError("the host is missing")
    try:
        port = parts.port or 3306
    except ValueError as exc:  # urllib raises on a non-numeric port
        raise ValueError(f"the port is not a number ({exc})") from None
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise ValueError("the database name is missing (…/database at the end)")
    if not re.fullmatch(r"[A-Za-z0-9_$]{1,64}", database):
        raise ValueError(f"database name {database!r} must be letters, digits, _ or $")
    return DatabaseTarget(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
    )


class Settings(BaseSettings):
    """Every command's settings; see the module docstring for the keys."""

    model_config = SettingsConfigDict(env_prefix="SNAPSYNC_", frozen=True, extra="forbid")

    database_url: SecretStr = Field(description="mysql://user:password@host:port/database")
    kafka_bootstrap: str = Field(description="host:port[,host:port...]")
    topic_prefix: str = "practice"
    home: Path = Path(".snapsync")
    capture: Literal["embedded", "debezium"] = "embedded"
    connector: str = Field("snapsync", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    decoder: Literal["native", "python"] = "native"
    connect_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    state_url: SecretStr | None = Field(None, description="mysql://user:password@host:port/schema (default: "
                                        "schema snapsync on the practice database's server)")
    signal_schema: str = "snapsync_signal"

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: SecretStr) -> SecretStr:
        parse_database_url(v.get_secret_value())
        return v

    @field_validator("state_url")
    @classmethod
    def _check_state(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parse_database_url(v.get_secret_value())
        return v

    @field_validator("signal_schema")
    @classmethod
    def _check_signal(cls, v: str) -> str:
        if not _SCHEMA_NAME.match(v):
            raise ValueError(f"{v!r} is not a schema name")
        return v

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, v: str) -> str:
        hosts = [h.strip() for h in v.split(",") if h.strip()]
        if not hosts or not all(_HOSTPORT.match(h) for h in hosts):
            raise ValueError(f"{v!r} is not a host:port list")
        return ",".join(hosts)

    @field_validator("home", mode="before")
    @classmethod
    def _check_home(cls, v: Any) -> Any:
        check_home(v)
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        if not _TOPIC_PREFIX.match(v):
            raise ValueError(f"{v!r} is not a valid topic prefix")
        return v

    @property
    def db(self) -> DatabaseTarget:
        """The parsed database URL."""
        return parse_database_url(self.database_url.get_secret_value())

    @property
    def state(self) -> DatabaseTarget:
        """The state store: ``state_url``, else schema ``snapsync`` on the practice database's
        server with the same login."""
        if self.state_url is not None:
            return parse_database_url(self.state_url.get_secret_value())
        return self.db.with_database(DEFAULT_STATE_SCHEMA)


def check_apart(settings: Settings) -> None:
    """snapsync's schemas are its own: never the practice schema, never each other.

    Raises:
        ConfigError: naming the key to fix.
    """
    db, state = settings.db, settings.state
    problems = []
    if state.same_server(db) and state.database == db.database:
        problems.append(f"SNAPSYNC_STATE_URL (state_url) points at the practice schema {db.database!r} itself: "
                        + CONFIG_FIXES["state_url"])
    if settings.signal_schema == db.database:
        problems.append(f"SNAPSYNC_SIGNAL_SCHEMA (signal_schema) is the practice schema {db.database!r}: "
                        + CONFIG_FIXES["signal_schema"])
    elif state.same_server(db) and settings.signal_schema == state.database:
        problems.append(f"SNAPSYNC_SIGNAL_SCHEMA (signal_schema) is the state store's schema {state.database!r}: "
                        + CONFIG_FIXES["signal_schema"])
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def settings_env(settings: Settings) -> dict[str, str]:
    """``SNAPSYNC_*`` environment variables that give a child process these settings."""
    env = {}
    for key in Settings.model_fields:
        value = getattr(settings, key)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SNAPSYNC_{key.upper()}"] = str(value)
    return env


def check_home(value: Any) -> Path:
    """A usable data folder path (it may not exist yet).

    Raises:
        ValueError: not a path, a file, or under a file.
    """
    if not isinstance(value, (str, os.PathLike)) or str(value).strip() == "":
        raise ValueError("must be a folder path")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{path} lies under the file {parent}")
            break
    return path


def local_stack_file(home: Path) -> Path:
    """Where ``snapsync local up`` records the running stack's settings."""
    return home / "local" / "stack.json"


def configured_values(config_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The keys set by the config file and the environment (environment wins), unvalidated.

    Raises:
        ConfigError: the config file is missing, not TOML, or has unknown keys.
    """
    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get("SNAPSYNC_CONFIG")
    if path is None and Path("snapsync.toml").is_file():
        path = "snapsync.toml"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist: give an existing TOML file to --config")
        try:
            file_values = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML ({exc}): fix the line named") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read ({exc.strerror}): check its permissions") from None
        unknown = sorted(set(file_values) - set(Settings.model_fields))
        if unknown:
            raise ConfigError(
                f"config file {p} has unknown key(s) {', '.join(unknown)}: "
                f"the keys are {', '.join(Settings.model_fields)}"
            )
    values = dict(file_values)
    for key in Settings.model_fields:
        env = os.environ.get(f"SNAPSYNC_{key.upper()}")
        if env is not None:
            values[key] = env
    return values


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings: explicit overrides > environment > config file > running local stack.

    Raises:
        ConfigError: naming every bad or missing key at once, each with its fix.
    """
    values = configured_values(config_file)
    values.update({k: v for k, v in overrides.items() if v is not None})
    home = values.get("home", ".snapsync")
    home = Path(home) if isinstance(home, (str, os.PathLike)) else Path(".snapsync")  # a bad one is reported below
    stack = local_stack_file(home)
    if ("database_url" not in values or "kafka_bootstrap" not in values) and stack.is_file():
        try:
            running = json.loads(stack.read_text(encoding="utf-8"))["settings"]
        except (ValueError, KeyError):
            running = {}
        for key in ("database_url", "kafka_bootstrap", "connect_url"):  # connect_url: `local up --connect`
            values.setdefault(key, running.get(key))
    values = {k: v for k, v in values.items() if v is not None}
    try:
        # Environment is already folded into `values`; read nothing twice.
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    check_apart(settings)
    return settings


def format_validation_error(exc: ValidationError) -> str:
    """One line per bad key: which key, what is wrong, how to fix it."""
    return validation_message(exc, "invalid configuration:", label=lambda k: f"SNAPSYNC_{k.upper()} ({k})",
                              fixes={k: CONFIG_FIXES.get(k, "see snapsync --help") for k in Settings.model_fields},
                              template="  - {label} {what}: {fix}")
