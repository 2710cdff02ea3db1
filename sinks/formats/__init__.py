"""Package formats. Each module of this package defines one :class:`PackageFormat`
subclass, named as the module (format ``dat`` in ``dat.py``); they are found here by name, so
adding a format is adding a module (and its name to ``schemas.control.Format``, which the
settings validate against). An export imports only its own format's module: Parquet's
pyarrow (0.1 s to import) is not loaded for a .DAT or MySQL export."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from snapsync.sinks.formats.base import PackageFormat


def _loaded() -> dict[str, type[PackageFormat]]:
    """The formats whose modules are imported, by name."""
    found: dict[str, type[PackageFormat]] = {}
    todo = list(PackageFormat.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if getattr(cls, "name", None):
            found[cls.name] = cls
    return found


@cache
def registry() -> dict[str, type[PackageFormat]]:
    """Every format of this package, by name."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    return _loaded()


def get_format(name: str) -> PackageFormat:
    """A new instance of the format ``name`` (one per package).

    Raises:
        ValueError: unknown format, naming the known ones.
    """
    if name.isidentifier() and name != "base" and name not in _loaded():
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            pass
    formats = _loaded()
    if name not in formats:
        formats = registry()
    if name not in formats:
        raise ValueError(f"unknown package format {name!r}: use {' or '.join(sorted(formats))}")
    return formats[name]()
