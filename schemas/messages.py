"""The pipeline's own messages (beside the Debezium change envelope in ``events.py``):
the capture heartbeat, the Data Sync command and the nightly round's export job. Each is
validated when read, so a malformed message is refused with a reason that quotes no values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from snapsync.schemas.catalog import dataset
from snapsync.schemas.control import SyncMode
from snapsync.schemas.events import SourcePosition, dumps


class HeartbeatSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    file: str
    pos: int = Field(ge=0)
    gtid: str | None = None


class Heartbeat(BaseModel):
    """A heartbeat on ``__debezium-heartbeat.<prefix>``.

    Debezium's own heartbeat is ``{"ts_ms": N}`` only. The embedded capture adds the
    binlog position it reached (``source``), the watermark (``watermark_us``: every change
    committed at or before it, source clock, microseconds since epoch, was produced before
    this heartbeat) and the end offset of every change-topic partition it wrote (``offsets``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts_ms: int
    source: HeartbeatSource | None = None
    watermark_us: int | None = None
    offsets: dict[str, dict[str, int]] | None = None

    @classmethod
    def at(cls, ts_ms: int, position: SourcePosition, watermark_us: int | None,
           offsets: dict[str, dict[str, int]] | None = None) -> Heartbeat:
        return cls(ts_ms=ts_ms, source=HeartbeatSource(file=position.file, pos=position.pos, gtid=position.gtid),
                   watermark_us=watermark_us, offsets=offsets)

    def position(self) -> SourcePosition | None:
        return None if self.source is None else SourcePosition(self.source.file, self.source.pos, 0, self.source.gtid)

    def to_json(self) -> bytes:
        return dumps(self.model_dump(exclude_none=True))


class SyncCommand(BaseModel):
    """Make ``target_customer``'s item (matched by natural key) follow the source's image."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str = Field(min_length=1, max_length=200)
    group_id: int = Field(ge=0)
    mode: SyncMode
    table: str
    source_customer: int = Field(gt=0)
    target_customer: int = Field(gt=0)
    values: dict[str, Any]
    #: The customers the change has been applied in, from its origin; the target records it
    #: with itself appended, and its own fan-out skips them (chains go on, cycles stop).
    path: tuple[int, ...] = ()
    #: When the source change was committed (binlog clock, milliseconds; whole seconds on
    #: MySQL/MariaDB): the applier measures commit-to-apply latency from it.
    source_ts_ms: int | None = None

    @field_validator("table")
    @classmethod
    def _sync_table(cls, v: str) -> str:
        try:
            ds = dataset(v)
        except KeyError:
            raise ValueError("not a data set of the catalog") from None
        if ds.sync_category is None or ds.table != v:
            raise ValueError("not a Data Sync data set")
        return v

    def to_json(self) -> bytes:
        return dumps(self.model_dump())

    @classmethod
    def from_json(cls, raw: bytes | str) -> SyncCommand:
        """Raises ``pydantic.ValidationError`` (a ``ValueError``) when malformed."""
        return cls.model_validate_json(raw)


def row_digest(image: dict[str, Any]) -> str:
    """Digest of a row image in the change-event encoding (the same from both sides):
    how the applier recognises its own writes coming back through the change stream."""
    return hashlib.sha256(json.dumps(image, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ExportJob(BaseModel):
    """One account's delivery for one New York day, on ``<prefix>.export.jobs`` (key
    ``{"account_id": N}``). The job only names the slot: the export worker reads the account's
    current settings and claims the slot in the database before exporting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: int = Field(gt=0, lt=2**32)
    slot_date: dt.date
    kind: Literal["full", "incremental"]
    published_at: dt.datetime
    #: Who published it (``host:pid`` of a scheduler), for the operator.
    publisher: str = Field(default="", max_length=200)

    def key(self) -> bytes:
        return dumps({"account_id": self.account_id})

    def to_json(self) -> bytes:
        return dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> ExportJob:
        """Raises ``pydantic.ValidationError`` (a ``ValueError``) when malformed."""
        if raw is None:
            raise ValueError("the job has no value")
        return cls.model_validate_json(raw)
