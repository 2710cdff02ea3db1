"""`snapsync db`: snapsync's own schemas (migrate, status) and each process's least privileges
(grants, check)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from snapsync.cli.common import ConfigOpt, JsonOpt, out, settings

app = typer.Typer(help="snapsync's own schemas and the grants of each process's database user.",
                  no_args_is_help=True)

RoleOpt = Annotated[str, typer.Option("--role", help="capture, debezium, export, sync, web or migrate "
                                      "(docs/deploy.md says which process runs as which).")]


@app.command("migrate")
def db_migrate(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Create or upgrade the state store and the signal schema (once per release, as a user with
    the migrate role). Moves the tables an earlier release kept in the practice schema."""
    from snapsync.control.migrate import migrate

    s = settings(config)
    report = migrate(s, say=None if json_ else out.print)
    if json_:
        print(json.dumps({"created_schemas": report.created_schemas, "moved": report.moved,
                          "versions": {k: {"before": a, "after": b} for k, (a, b) in report.versions.items()},
                          "paired": report.paired}))
        return
    for line in report.lines():
        if not line.startswith("created schema"):
            out.print(line)
    out.print(f"state store `{s.state.database}` on {s.state.host}:{s.state.port}, signal schema "
              f"`{s.signal_schema}` on {s.db.host}:{s.db.port}: ready")


@app.command("status")
def db_status(config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Each schema's version beside the one this release needs; exits 1 when one is not current."""
    from snapsync.control.migrate import versions

    rows = versions(settings(config))
    if json_:
        print(json.dumps(rows))
    else:
        for component, r in rows.items():
            name = "state store" if component == "state" else "signal schema"
            out.print(f"{name} `{r['schema']}` on {r['server']}: version {r['version']} (this release needs "
                      f"{r['needed']}): {r['state']}" + ("" if r["state"] == "current" else " - run `snapsync db migrate`"
                                                          if r["state"] != "newer" else " - upgrade snapsync"))
    if any(r["state"] != "current" for r in rows.values()):
        raise typer.Exit(1)


@app.command("grants")
def db_grants(
    role: RoleOpt,
    user: Annotated[Optional[str], typer.Option("--user", help="The login the statements grant to (default: the "
                                                "configured database_url's user).")] = None,
    host: Annotated[str, typer.Option("--host", help="The login's host part ('%' any, or e.g. 10.0.0.%).")] = "%",
    state_user: Annotated[Optional[str], typer.Option("--state-user", help="The state store's login (default: "
                                                      "--user, or state_url's user).")] = None,
    flavor: Annotated[Optional[str], typer.Option("--server", help="Print for this server without asking it: "
                                                  "mariadb, mysql (8.0), mysql8.4.")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Run the statements as the configured login (an "
                                        "administrator's), instead of printing them; a grant on a table that does "
                                        "not exist yet is skipped and named (run again once it does).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Print the exact GRANT statements of one process's role (optional ones as comments), or
    run them (--apply)."""
    from snapsync.connectors.dialect import Dialect
    from snapsync.connectors.grants import grant_statements, role_grants
    from snapsync.connectors.mysql import connect
    from snapsync.schemas.errors import ConfigError

    s = settings(config)
    if flavor is not None:
        known = {"mariadb": ("10.11.0-MariaDB", ""), "mysql": ("8.0.40", ""), "mysql8.4": ("8.4.3", "")}
        if flavor not in known:
            raise ConfigError(f"--server {flavor!r}: use mariadb, mysql or mysql8.4")
        dialect = Dialect.from_version(*known[flavor])
    else:
        with connect(s.db, database=False) as conn:
            dialect = Dialect.of(conn)
    grants = role_grants(s, role, dialect)
    who = user or s.db.user
    lines = grant_statements(grants, who, state_user or user or s.state.user, host)
    if apply:
        from snapsync.connectors.grants import apply_grants

        done, skipped = apply_grants(s, grants, who, state_user or user or s.state.user, host)
        for statement in done:
            out.print(f"granted: {statement}", soft_wrap=True)
        for statement, why in skipped:
            out.print(f"skipped ({why}): {statement}", soft_wrap=True)
        return
    print(f"-- snapsync {role} role on {dialect.name}: practice schema `{s.db.database}`, signal schema "
          f"`{s.signal_schema}`, state store `{s.state.database}`")
    for line in lines:
        print(line)


@app.command("check")
def db_check(role: RoleOpt, config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Check that the configured logins hold every grant of ``role``; name what is missing and
    exit 1 if anything is."""
    from snapsync.connectors.grants import grant_statements, missing_for

    s = settings(config)
    missing, notes = missing_for(s, role)
    if json_:
        print(json.dumps({"role": role, "ok": not missing, "notes": notes,
                          "missing": [{"server": g.server, "privileges": list(g.privileges), "scope": g.scope,
                                       "why": g.why} for g in missing]}))
    else:
        for note in notes:
            out.print(f"note: {note}")
        if not missing:
            out.print(f"the logins hold every grant of the {role} role")
        for g in missing:
            out.print(f"missing on the {g.server} server: {', '.join(g.privileges)} on {g.scope} ({g.why})")
        if missing:
            out.print("to give them, as an administrator:")
            for line in grant_statements(missing, s.db.user, s.state.user):
                out.print("  " + line.splitlines()[-1])
    if missing:
        raise typer.Exit(1)
