"""The layout's rules, read from the code: foundations never import their users."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Each data-flow package and the project packages it may import (besides itself).
ALLOWED = {
    "schemas": set(),
    "connectors": {"schemas"},
    "control": {"schemas", "connectors"},
    "streams": {"schemas", "connectors", "control"},
    "sinks": {"schemas", "connectors", "control"},
}
PROJECT = {*ALLOWED, "cli", "local", "seed", "demo", "web"}
DATA_TABLES = {"schemas/catalog.py", "schemas/state.py"}  # data (the catalog, the state store's DDL): may be long


def _imports(path: Path) -> set[str]:
    """The project packages a module imports (``snapsync.<pkg>`` or a bare ``<pkg>``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "snapsync" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] in ALLOWED:
                found.add(parts[0])
            elif parts == ["snapsync"]:
                found.add("cli")
    return found & PROJECT


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_sits_below_them(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        extra = _imports(path) - ALLOWED[package] - {package}
        if extra:
            bad[str(path.relative_to(ROOT))] = sorted(extra)
    assert bad == {}


def test_no_module_over_500_lines_but_data_tables():
    long = {}
    for folder in (*ALLOWED, "snapsync", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            n = len(path.read_text().splitlines())
            if n > 500 and rel not in DATA_TABLES:
                long[rel] = n
    assert long == {}


def test_no_function_over_80_lines_in_the_data_flow():
    """Issue 25: each step of a sink, stream or connector reads in one screen."""
    import ast

    long = {}
    for folder in ("sinks", "streams", "connectors"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        node.end_lineno - node.lineno + 1 > 80:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {}
