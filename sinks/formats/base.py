"""The package-format interface: what a format of the snapshot product must do.

A package is written by :class:`snapsync.sinks.package.PackageWriter`, which owns the
files (private, hashed, counted) and the manifest and never looks at a format's name.
The format decides:

* how the server formats one row (:meth:`PackageFormat.row_expr`, an SQL expression
  whose text is one line per row: the readers stream those lines and never decode values);
* which file a data set goes to (one per data set, or one per package);
* what the file holds around and instead of those lines: headers, statements, the rows
  of an incremental data set given as MySQL text values, deletes by primary key; or what
  it makes of them (Parquet parses the lines into typed columns and writes its row groups
  and footer in :meth:`PackageFormat.end`).

The package writer adds what every format carries: the DDL file (``schema.sql``) and the
typed schema of each data set in ``manifest.json``, both from the data set it is given,
which the export reads from the live source (``sinks/source_schema.py``).

A new format is one new module in this package with one subclass (see ``__init__``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import BinaryIO, ClassVar

from snapsync.schemas.catalog import DataSet

#: The first column of an incremental data set, in formats that carry the operation in a
#: column: ``U`` (upsert) or ``D`` (delete; only the primary-key columns carry values).
OP_COLUMN = "_op"


class PackageFormat(ABC):
    """One package format (an instance per package: it may keep per-data-set state)."""

    #: The name users choose (``--format``, the settings, the web page).
    name: ClassVar[str]
    #: Shown to people: the product's words for the format.
    label: ClassVar[str]
    #: The one file of the whole package, or None when each data set has its own file.
    package_file: ClassVar[str | None] = None

    def file_name(self, ds: DataSet) -> str:
        """The file (inside the package folder) that holds data set ``ds``."""
        return self.package_file or self.dataset_file(ds)

    def dataset_file(self, ds: DataSet) -> str:
        raise NotImplementedError(f"{type(self).__name__} writes one file per package")

    # -- package ------------------------------------------------------------------------
    def start_package(self, out: BinaryIO) -> None:
        """Write the package file's header (formats with a ``package_file`` only)."""

    def finish_package(self, out: BinaryIO) -> None:
        """Write the package file's footer (formats with a ``package_file`` only)."""

    # -- one data set ---------------------------------------------------------------------
    @abstractmethod
    def row_expr(self, ds: DataSet, *, changes: bool = False) -> str:
        """SQL expression that the server evaluates to one row's line (without its LF).

        ``changes``: the rows of an incremental data set, written as upserts."""

    @abstractmethod
    def begin(self, ds: DataSet, out: BinaryIO, *, changes: bool = False) -> None:
        """Start data set ``ds`` (full contents, or with ``changes`` its upserts and deletes)."""

    @abstractmethod
    def write_rows(self, ds: DataSet, lines: bytes, out: BinaryIO) -> None:
        """Whole lines produced by :meth:`row_expr`, each ending in LF."""

    @abstractmethod
    def write_upserts(self, ds: DataSet, rows: Sequence[dict[str, str | None]], out: BinaryIO) -> None:
        """Rows of an incremental data set given as MySQL text values by column name."""

    @abstractmethod
    def write_deletes(self, ds: DataSet, keys: Sequence[dict], out: BinaryIO) -> None:
        """Deleted rows of an incremental data set, by primary key (event-encoded values)."""

    def write_replaced(self, ds: DataSet, customers: Sequence[int], out: BinaryIO) -> None:
        """An incremental data set that carries ``customers``' rows in full (the manifest's
        ``full_for_customers``): what replaces their rows where the format applies itself (the
        MySQL dump); the files of the other formats leave it to the loader (loading.md)."""

    def end(self, ds: DataSet, out: BinaryIO, *, changes: bool = False) -> None:
        """Finish data set ``ds``."""
