"""Control tables (docs/contracts.md, contract 9) and the validated models stored in them.

Control tables live in the practice database beside the data, prefixed ``snapsync_``;
capture never emits them as changes (they are not catalog tables).
"""

from __future__ import annotations

import datetime as dt
import re
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

SYNC_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_service` (
  `account_id` INT UNSIGNED NOT NULL,
  `enabled` TINYINT(1) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_group` (
  `group_id` INT UNSIGNED NOT NULL AUTO_INCREMENT,
  `account_id` INT UNSIGNED NOT NULL,
  `source_customer` INT UNSIGNED NOT NULL,
  `mode` VARCHAR(12) NOT NULL,
  `categories` JSON NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`group_id`),
  KEY `ix_source` (`source_customer`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_target` (
  `group_id` INT UNSIGNED NOT NULL,
  `target_customer` INT UNSIGNED NOT NULL,
  `added_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`group_id`, `target_customer`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Commands already applied (idempotence under redelivery), in the apply transaction.
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_applied` (
  `command_id` VARCHAR(200) NOT NULL,
  `applied_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`command_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The applier's own writes, recognised when they come back through the change stream.
    # ``path``: the customers the change has been applied in, from its origin (a chain goes on
    # to targets not in it); NULL: snapsync's own write that is never fanned out (an undo).
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_echo` (
  `echo_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `table_name` VARCHAR(64) NOT NULL,
  `row_id` BIGINT UNSIGNED NOT NULL,
  `digest` CHAR(64) NOT NULL,
  `path` JSON NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`echo_id`),
  KEY `ix_row` (`table_name`, `row_id`, `digest`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The fan-out's decision for each change event it recognised as snapsync's write, by the
    # event's binlog position: a replayed event (after a crash) is routed the same way.
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_seen` (
  `event_id` VARCHAR(200) NOT NULL,
  `path` JSON NULL,
  `seen_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`event_id`),
  KEY `ix_seen_at` (`seen_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Before-images of what sync wrote, for `snapsync sync undo` (before_json NULL: created).
    # ``after_json``: what the application wrote (MySQL text by column; for a bulk range of
    # created rows, by row id), so that undo can tell whether the item changed since.
    """CREATE TABLE IF NOT EXISTS `snapsync_sync_before` (
  `audit_id` BIGINT UNSIGNED NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `target_customer` INT UNSIGNED NOT NULL,
  `row_id` BIGINT UNSIGNED NULL,
  `natural_key` JSON NOT NULL,
  `before_json` JSON NULL,
  `after_json` JSON NULL,
  KEY `ix_audit` (`audit_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

DELTA_DDL: tuple[str, ...] = (
    # The deltas agent's durable staging: per customer and window, the newest image (or the
    # delete) of every changed row of the incremental data sets.
    """CREATE TABLE IF NOT EXISTS `snapsync_delta` (
  `customer_id` INT UNSIGNED NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `pk` VARCHAR(255) NOT NULL,
  `window_cutoff` DATETIME NOT NULL,
  `op` CHAR(1) NOT NULL,
  `image` JSON NULL,
  `src_order` DECIMAL(38,0) NOT NULL,
  `source_ts_ms` BIGINT NOT NULL,
  PRIMARY KEY (`customer_id`, `table_name`, `pk`, `window_cutoff`),
  KEY `ix_window` (`window_cutoff`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Staged changes an export could not use (a value that does not fit its column): kept
    # with the reason, out of the way of every later export.
    """CREATE TABLE IF NOT EXISTS `snapsync_delta_quarantine` (
  `quarantine_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `customer_id` INT UNSIGNED NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `pk` VARCHAR(255) NOT NULL,
  `window_cutoff` DATETIME NOT NULL,
  `op` CHAR(1) NOT NULL,
  `image` LONGTEXT NULL,
  `src_order` DECIMAL(38,0) NOT NULL,
  `reason` VARCHAR(500) NOT NULL,
  `quarantined_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`quarantine_id`),
  KEY `ix_customer` (`customer_id`, `table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # What each delivery target (a delivery folder) last received, per customer.
    """CREATE TABLE IF NOT EXISTS `snapsync_incremental_state` (
  `delivery_key` VARCHAR(255) NOT NULL,
  `customer_id` INT UNSIGNED NOT NULL,
  `last_cutoff` DATETIME NOT NULL,
  `covered_order` DECIMAL(38,0) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`delivery_key`, `customer_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS `snapsync_delta_progress` (
  `topic` VARCHAR(255) NOT NULL,
  `partition_id` INT UNSIGNED NOT NULL,
  `next_offset` BIGINT UNSIGNED NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`topic`, `partition_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

USER_DDL: tuple[str, ...] = (
    # People of the Services web app: one account each, a role, an argon2 password hash.
    """CREATE TABLE IF NOT EXISTS `snapsync_user` (
  `user_id` INT UNSIGNED NOT NULL AUTO_INCREMENT,
  `account_id` INT UNSIGNED NOT NULL,
  `email` VARCHAR(254) NOT NULL,
  `role` VARCHAR(12) NOT NULL,
  `password_hash` VARCHAR(255) NOT NULL,
  `disabled` TINYINT(1) NOT NULL DEFAULT 0,
  `created_at` DATETIME(6) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`user_id`),
  UNIQUE KEY `uk_email` (`email`),
  KEY `ix_account` (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Personal API tokens: only their SHA-256 is kept (the token is shown once).
    """CREATE TABLE IF NOT EXISTS `snapsync_api_token` (
  `token_id` INT UNSIGNED NOT NULL AUTO_INCREMENT,
  `user_id` INT UNSIGNED NOT NULL,
  `token_hash` CHAR(64) NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  `expires_at` DATETIME(6) NOT NULL,
  `last_used_at` DATETIME(6) NULL,
  PRIMARY KEY (`token_id`),
  UNIQUE KEY `uk_hash` (`token_hash`),
  KEY `ix_user` (`user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Signed-in browsers: the SHA-256 of the session id in the cookie, its CSRF token, expiry.
    """CREATE TABLE IF NOT EXISTS `snapsync_web_session` (
  `session_hash` CHAR(64) NOT NULL,
  `user_id` INT UNSIGNED NOT NULL,
  `csrf_token` VARCHAR(64) NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  `expires_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`session_hash`),
  KEY `ix_user` (`user_id`),
  KEY `ix_expires` (`expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Failed sign-ins per e-mail and per client address, for throttling.
    """CREATE TABLE IF NOT EXISTS `snapsync_login_failure` (
  `throttle_key` VARCHAR(300) NOT NULL,
  `at` DATETIME(6) NOT NULL,
  KEY `ix_key_at` (`throttle_key`, `at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Which user has read which message (the Messaging section's unread counts).
    """CREATE TABLE IF NOT EXISTS `snapsync_notification_read` (
  `notification_id` BIGINT UNSIGNED NOT NULL,
  `user_id` INT UNSIGNED NOT NULL,
  `read_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`notification_id`, `user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

OPS_DDL: tuple[str, ...] = (
    # The nightly round's claims: one row per account, New York day and kind (the unique key
    # that makes a delivery happen once however many schedulers and export workers run). A
    # claimant holds the slot while ``lease_until`` (database clock) is in the future and
    # renews it while it works; an expired lease may be taken over (docs/operations.md).
    """CREATE TABLE IF NOT EXISTS `snapsync_export_claim` (
  `account_id` INT UNSIGNED NOT NULL,
  `slot_date` DATE NOT NULL,
  `kind` VARCHAR(12) NOT NULL,
  `state` VARCHAR(12) NOT NULL,
  `owner` VARCHAR(200) NULL,
  `lease_until` DATETIME(6) NULL,
  `attempts` INT UNSIGNED NOT NULL DEFAULT 0,
  `delivery_id` BIGINT UNSIGNED NULL,
  `published_at` DATETIME(6) NULL,
  `late_notified_at` DATETIME(6) NULL,
  `created_at` DATETIME(6) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`account_id`, `slot_date`, `kind`),
  KEY `ix_slot_state` (`slot_date`, `state`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Long-running processes (capture, worker, scheduler, export workers, web) say they are
    # alive every few seconds: `snapsync status` reports one not seen for a while as stopped.
    """CREATE TABLE IF NOT EXISTS `snapsync_process` (
  `process_id` VARCHAR(200) NOT NULL,
  `role` VARCHAR(20) NOT NULL,
  `host` VARCHAR(255) NOT NULL,
  `pid` INT UNSIGNED NOT NULL,
  `started_at` DATETIME(6) NOT NULL,
  `seen_at` DATETIME(6) NOT NULL,
  `interval_s` DOUBLE NOT NULL,
  `stopped_at` DATETIME(6) NULL,
  `metrics_port` INT UNSIGNED NULL,
  PRIMARY KEY (`process_id`),
  KEY `ix_role_seen` (`role`, `seen_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

Role = Literal["auth-rep", "viewer"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class User(BaseModel):
    """A person of the Services web app: one account, a role (``auth-rep`` changes and
    downloads; ``viewer`` reads)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: int | None = None
    account_id: int = Field(gt=0)
    email: str
    role: Role = "viewer"
    disabled: bool = False

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = v.strip().lower()
        if len(v) > 254 or not _EMAIL.match(v):
            raise ValueError("give an e-mail address such as name@example.com")
        return v

    @property
    def can_change(self) -> bool:
        return self.role == "auth-rep"


SyncMode = Literal["create-only", "override"]
CLI_CATEGORIES = {"codes": "codes", "facilities": "facilities", "referring-providers": "referring_providers",
                  "payers": "payers"}


class SyncGroup(BaseModel):
    """One sync-from customer, its sync-to customers, the categories and the mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_id: int | None = None
    account_id: int
    source_customer: int = Field(gt=0)
    targets: tuple[int, ...]
    categories: tuple[str, ...]
    mode: SyncMode = "create-only"

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("give at least one sync-to customer")
        if len(set(v)) != len(v):
            raise ValueError("a sync-to customer is listed twice")
        return tuple(sorted(v))

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("choose at least one data category")
        unknown = [c for c in v if c not in CLI_CATEGORIES.values()]
        if unknown:
            raise ValueError(f"unknown data category {', '.join(unknown)}: use codes, facilities, "
                             "referring-providers or payers")
        return tuple(sorted(set(v)))


Format = Literal["dat", "mysql", "parquet"]
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


#: Columns added to control tables after their first release: (table, column, definition).
#: ``control.tables.ensure_control_tables`` adds the missing ones (MySQL has no ADD COLUMN IF NOT EXISTS).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("snapsync_sync_echo", "path", "JSON NULL AFTER `digest`"),
    ("snapsync_sync_before", "after_json", "JSON NULL"),
)
