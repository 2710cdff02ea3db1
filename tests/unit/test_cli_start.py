"""The CLI starts without the heavy libraries (issue 20): they load in the commands that use
them. Checked by the module names a fresh interpreter has imported, never by time."""

from __future__ import annotations

import json
import subprocess
import sys

#: Nothing of these for ``snapsync --help``: stream processing, columnar files, the web app, the
#: binlog decoders, the database and broker clients, configuration models, password hashing.
HEAVY = ("faust", "aiokafka", "pyarrow", "fastapi", "starlette", "uvicorn", "jinja2", "pymysqlreplication",
         "mysql_event_stream", "confluent_kafka", "pydantic", "pydantic_settings", "pymysql", "argon2", "zxcvbn",
         "prometheus_client", "requests", "orjson")
#: A command that reads settings and the catalog but neither streams, nor serves, nor writes files.
NOT_FOR_CATALOG = ("faust", "aiokafka", "pyarrow", "fastapi", "starlette", "uvicorn", "jinja2",
                   "pymysqlreplication", "mysql_event_stream", "confluent_kafka", "argon2", "zxcvbn")

_RUN = """
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(m.split(".")[0] for m in sys.modules)),
                              file=sys.stderr))
sys.argv = ["snapsync", *{args!r}]
from snapsync.cli import main
main()
"""


def modules_after(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", _RUN.format(args=list(args))], capture_output=True, text=True,
                       timeout=60)
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def test_help_imports_none_of_the_heavy_libraries():
    loaded = modules_after("--help")
    assert "typer" in loaded  # the check sees what it should
    assert sorted(loaded & set(HEAVY)) == []


def test_every_command_groups_help_imports_none_of_them_either():
    # typer itself coerces some parameter types with pydantic: allowed there, the rest is not
    for group in ("snapshot", "sync", "users", "db", "connector", "local"):
        assert sorted(modules_after(group, "--help") & (set(HEAVY) - {"pydantic"})) == [], group


def test_a_light_command_loads_only_what_it_uses():
    loaded = modules_after("catalog", "--json")
    assert sorted(loaded & set(NOT_FOR_CATALOG)) == []


def test_a_dat_or_mysql_export_leaves_parquets_pyarrow_unloaded():
    """An export loads only its own format's module (sinks/formats/__init__.py)."""
    code = ("import sys\nfrom snapsync.sinks.formats import get_format\nimport snapsync.sinks.export, "
            "snapsync.connectors.crypto, snapsync.connectors.sftp\n"
            "get_format('dat'); get_format('mysql')\nprint('pyarrow' in sys.modules, 'paramiko' in sys.modules, "
            "'gnupg' in sys.modules)\n"
            "get_format('parquet')\nprint('pyarrow' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["False", "False", "False", "True"], r.stderr
