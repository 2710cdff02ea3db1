"""Package formats. Each module of this package defines one :class:`PackageFormat`
subclass; they are found here by name, so adding a format is adding a module (and its
name to ``schemas.control.Format``, which the settings validate against)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from snapsync.sinks.formats.base import PackageFormat


@cache
def registry() -> dict[str, type[PackageFormat]]:
    """Every format of this package, by name."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    found: dict[str, type[PackageFormat]] = {}
    todo = list(PackageFormat.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if getattr(cls, "name", None):
            found[cls.name] = cls
    return found


def get_format(name: str) -> PackageFormat:
    """A new instance of the format ``name`` (one per package).

    Raises:
        ValueError: unknown format, naming the known ones.
    """
    formats = registry()
    if name not in formats:
        raise ValueError(f"unknown package format {name!r}: use {' or '.join(sorted(formats))}")
    return formats[name]()
