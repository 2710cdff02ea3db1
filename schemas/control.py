"""Control tables (DESIGN.md contract 9) and the validated models stored in them.

Control tables live in the practice database beside the data, prefixed ``snapsync_``;
capture never emits them as changes (they are not catalog tables).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONTROL_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS `snapsync_snapshot_settings` (
  `account_id` INT UNSIGNED NOT NULL,
  `enabled` TINYINT(1) NOT NULL,
  `format` VARCHAR(10) NOT NULL,
  `kind` VARCHAR(12) NOT NULL,
  `packaging` VARCHAR(14) NOT NULL,
  `container` VARCHAR(8) NOT NULL,
  `customers` JSON NOT NULL,
  `keep` SMALLINT UNSIGNED NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  `updated_by` VARCHAR(120) NOT NULL,
  PRIMARY KEY (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS `snapsync_audit` (
  `audit_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `at` DATETIME(6) NOT NULL,
  `actor` VARCHAR(120) NOT NULL,
  `account_id` INT UNSIGNED NULL,
  `entity` VARCHAR(40) NOT NULL,
  `entity_id` VARCHAR(120) NULL,
  `action` VARCHAR(40) NOT NULL,
  `before_json` JSON NULL,
  `after_json` JSON NULL,
  `detail` JSON NULL,
  PRIMARY KEY (`audit_id`),
  KEY `ix_account_at` (`account_id`, `at`),
  KEY `ix_entity` (`entity`, `entity_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS `snapsync_notification` (
  `notification_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `account_id` INT UNSIGNED NOT NULL,
  `at` DATETIME(6) NOT NULL,
  `kind` VARCHAR(40) NOT NULL,
  `message` VARCHAR(1000) NOT NULL,
  `detail` JSON NULL,
  PRIMARY KEY (`notification_id`),
  KEY `ix_account_at` (`account_id`, `at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS `snapsync_delivery` (
  `delivery_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `account_id` INT UNSIGNED NOT NULL,
  `slot_date` DATE NOT NULL,
  `kind` VARCHAR(12) NOT NULL,
  `status` VARCHAR(12) NOT NULL,
  `started_at` DATETIME(6) NOT NULL,
  `finished_at` DATETIME(6) NULL,
  `path` VARCHAR(1000) NULL,
  `bytes` BIGINT UNSIGNED NULL,
  `rows_total` BIGINT UNSIGNED NULL,
  `detail` JSON NULL,
  PRIMARY KEY (`delivery_id`),
  UNIQUE KEY `uk_slot` (`account_id`, `slot_date`, `kind`, `status`, `delivery_id`),
  KEY `ix_account_slot` (`account_id`, `slot_date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

Format = Literal["dat", "mysql"]
Kind = Literal["full", "incremental"]
Packaging = Literal["per-customer", "combined"]
Container = Literal["folder", "zip"]


class SnapshotSettings(BaseModel):
    """An account's Recurring Data Snapshots settings (validated on write)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: int = Field(gt=0)
    enabled: bool = True
    format: Format = "dat"
    kind: Kind = "full"
    packaging: Packaging = "per-customer"
    container: Container = "folder"
    customers: tuple[int, ...]
    keep: int = Field(default=1, ge=1, le=30, description="deliveries kept; the product overwrites daily (1)")

    @field_validator("customers")
    @classmethod
    def _customers(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("select at least one customer")
        if len(set(v)) != len(v):
            raise ValueError("a customer is listed twice")
        if any(c <= 0 for c in v):
            raise ValueError("customer ids are positive integers")
        return tuple(sorted(v))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
