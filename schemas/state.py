"""Where snapsync keeps its own state, and how those tables come to be (``snapsync db migrate``).

Three places, each with a reason (``docs/decisions.md``, "State in a schema of its own"):

* **The practice schema** (``database_url``) holds the billing application's data only.
  snapsync reads it, and writes there only what Data Sync applies (and undoes).
* **The state store** (``state_url``; default: schema ``snapsync`` on the practice database's
  server) holds everything that is snapsync's own: settings, audit, messages, deliveries,
  users, sessions, tokens, claims, processes, the capture's stored position, incremental
  state, the deltas staging and its progress. It may live on another server: nothing joins
  it with the practice schema.
* **The signal schema** (``signal_schema``, default ``snapsync_signal``, always on the source
  server, reached with the practice database's login) holds only what must travel through
  the source's binlog or commit atomically with a write to the source: the capture's
  heartbeat and the exporter's watermark probe, Debezium's signal table, and Data Sync's
  applied and echo marks, routing decisions, before-images and the audit outbox of its writes.

Every table is created by one versioned migration per schema (:data:`MIGRATIONS`); each
schema records the versions applied in ``snapsync_schema_version``. Ordinary commands never
run DDL: they compare that version with :data:`SCHEMA_VERSIONS` and name ``snapsync db
migrate`` when it is missing or older. A migration is idempotent (``CREATE TABLE IF NOT
EXISTS``, columns added only when missing), so one interrupted half-way can simply be run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Component = Literal["state", "signal"]

#: The version table of each schema.
VERSION_TABLE = "snapsync_schema_version"
VERSION_DDL = f"""CREATE TABLE IF NOT EXISTS `{VERSION_TABLE}` (
  `version` INT UNSIGNED NOT NULL,
  `description` VARCHAR(200) NOT NULL,
  `release` VARCHAR(40) NOT NULL,
  `applied_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`version`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

#: The tables of the state store, by name.
STATE_TABLES: dict[str, str] = {
    "snapsync_snapshot_settings": """CREATE TABLE IF NOT EXISTS `snapsync_snapshot_settings` (
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
    "snapsync_audit": """CREATE TABLE IF NOT EXISTS `snapsync_audit` (
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
  `journal_id` BIGINT UNSIGNED NULL,
  PRIMARY KEY (`audit_id`),
  KEY `ix_account_at` (`account_id`, `at`),
  UNIQUE KEY `uk_journal` (`journal_id`),
  KEY `ix_entity` (`entity`, `entity_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "snapsync_notification": """CREATE TABLE IF NOT EXISTS `snapsync_notification` (
  `notification_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `account_id` INT UNSIGNED NOT NULL,
  `at` DATETIME(6) NOT NULL,
  `kind` VARCHAR(40) NOT NULL,
  `message` VARCHAR(1000) NOT NULL,
  `detail` JSON NULL,
  PRIMARY KEY (`notification_id`),
  KEY `ix_account_at` (`account_id`, `at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "snapsync_delivery": """CREATE TABLE IF NOT EXISTS `snapsync_delivery` (
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
    "snapsync_sync_service": """CREATE TABLE IF NOT EXISTS `snapsync_sync_service` (
  `account_id` INT UNSIGNED NOT NULL,
  `enabled` TINYINT(1) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "snapsync_sync_group": """CREATE TABLE IF NOT EXISTS `snapsync_sync_group` (
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
    "snapsync_sync_target": """CREATE TABLE IF NOT EXISTS `snapsync_sync_target` (
  `group_id` INT UNSIGNED NOT NULL,
  `target_customer` INT UNSIGNED NOT NULL,
  `added_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`group_id`, `target_customer`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The deltas stage's durable staging: per customer and window, the newest image (or the
    # delete) of every changed row of the incremental data sets.
    "snapsync_delta": """CREATE TABLE IF NOT EXISTS `snapsync_delta` (
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
    "snapsync_delta_quarantine": """CREATE TABLE IF NOT EXISTS `snapsync_delta_quarantine` (
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
    "snapsync_incremental_state": """CREATE TABLE IF NOT EXISTS `snapsync_incremental_state` (
  `delivery_key` VARCHAR(255) NOT NULL,
  `customer_id` INT UNSIGNED NOT NULL,
  `last_cutoff` DATETIME NOT NULL,
  `covered_order` DECIMAL(38,0) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`delivery_key`, `customer_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "snapsync_delta_progress": """CREATE TABLE IF NOT EXISTS `snapsync_delta_progress` (
  `topic` VARCHAR(255) NOT NULL,
  `partition_id` INT UNSIGNED NOT NULL,
  `next_offset` BIGINT UNSIGNED NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`topic`, `partition_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # People of the Services web app: one account each, a role, an argon2 password hash.
    "snapsync_user": """CREATE TABLE IF NOT EXISTS `snapsync_user` (
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
    "snapsync_api_token": """CREATE TABLE IF NOT EXISTS `snapsync_api_token` (
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
    "snapsync_web_session": """CREATE TABLE IF NOT EXISTS `snapsync_web_session` (
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
    "snapsync_login_failure": """CREATE TABLE IF NOT EXISTS `snapsync_login_failure` (
  `throttle_key` VARCHAR(300) NOT NULL,
  `at` DATETIME(6) NOT NULL,
  KEY `ix_key_at` (`throttle_key`, `at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Which user has read which message (the Messaging section's unread counts).
    "snapsync_notification_read": """CREATE TABLE IF NOT EXISTS `snapsync_notification_read` (
  `notification_id` BIGINT UNSIGNED NOT NULL,
  `user_id` INT UNSIGNED NOT NULL,
  `read_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`notification_id`, `user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The nightly round's claims: one row per account, New York day and kind (the unique key
    # that makes a delivery happen once however many schedulers and export workers run). A
    # claimant holds the slot while ``lease_until`` (database clock) is in the future and
    # renews it while it works; an expired lease may be taken over (docs/operations.md).
    "snapsync_export_claim": """CREATE TABLE IF NOT EXISTS `snapsync_export_claim` (
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
    "snapsync_process": """CREATE TABLE IF NOT EXISTS `snapsync_process` (
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
    # Data Sync's writes a person asked for (a group's initial copy, an undo, a Data Copy and
    # its undo), made by the worker (control/sync_tasks.py): claimed with a lease, the outcome kept for the requester.
    "snapsync_sync_task": """CREATE TABLE IF NOT EXISTS `snapsync_sync_task` (
  `task_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `account_id` INT UNSIGNED NOT NULL,
  `kind` VARCHAR(12) NOT NULL,
  `payload` JSON NOT NULL,
  `state` VARCHAR(12) NOT NULL,
  `owner` VARCHAR(200) NULL,
  `lease_until` DATETIME(6) NULL,
  `attempts` INT UNSIGNED NOT NULL DEFAULT 0,
  `result` JSON NULL,
  `error` VARCHAR(1000) NULL,
  `requested_by` VARCHAR(120) NOT NULL,
  `requested_at` DATETIME(6) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  `finished_at` DATETIME(6) NULL,
  PRIMARY KEY (`task_id`),
  KEY `ix_state` (`state`, `task_id`),
  KEY `ix_account` (`account_id`, `task_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Usage metering (control/usage.py): one row per thing counted, keyed by what it counts
    # (``kind``, ``ref``: a delivery id, an export's id, a journal id), so a delivery recorded
    # after a crash and retry, or an audit record moved twice, is counted once (INSERT IGNORE
    # in the same transaction as the delivery record or the audit record). ``month``: the
    # first day of the New York month it is billed in.
    "snapsync_usage_event": """CREATE TABLE IF NOT EXISTS `snapsync_usage_event` (
  `event_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `kind` VARCHAR(16) NOT NULL,
  `ref` VARCHAR(120) NOT NULL,
  `account_id` INT UNSIGNED NOT NULL,
  `month` DATE NOT NULL,
  `at` DATETIME(6) NOT NULL,
  `billable` TINYINT(1) NOT NULL,
  `deliveries` INT UNSIGNED NOT NULL DEFAULT 0,
  `rows_total` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  `bytes` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  `data_sets` INT UNSIGNED NOT NULL DEFAULT 0,
  `sync_items` INT UNSIGNED NOT NULL DEFAULT 0,
  `detail` JSON NULL,
  PRIMARY KEY (`event_id`),
  UNIQUE KEY `uk_ref` (`kind`, `ref`),
  KEY `ix_account_month` (`account_id`, `month`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Requested Data Copies between accounts (control/data_copy.py): account A asks to copy
    # setup data of one of its customers into a customer of account B; B approves (choosing
    # the target customer) or declines; the worker makes an approved copy (a task).
    # ``to_customer_hint``: the number A was given out of band (A's own input, shown back to A);
    # ``target_customer``/``target_name``: set by B's approval, the only thing of B that A sees.
    "snapsync_data_copy": """CREATE TABLE IF NOT EXISTS `snapsync_data_copy` (
  `copy_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `from_account` INT UNSIGNED NOT NULL,
  `source_customer` INT UNSIGNED NOT NULL,
  `to_account` INT UNSIGNED NOT NULL,
  `to_customer_hint` INT UNSIGNED NOT NULL,
  `target_customer` INT UNSIGNED NULL,
  `target_name` VARCHAR(255) NULL,
  `categories` JSON NOT NULL,
  `mode` VARCHAR(12) NOT NULL,
  `state` VARCHAR(12) NOT NULL,
  `requested_by` VARCHAR(120) NOT NULL,
  `requested_at` DATETIME(6) NOT NULL,
  `decided_by` VARCHAR(120) NULL,
  `decided_at` DATETIME(6) NULL,
  `task_id` BIGINT UNSIGNED NULL,
  `result` JSON NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`copy_id`),
  KEY `ix_from` (`from_account`, `copy_id`),
  KEY `ix_to` (`to_account`, `copy_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The embedded capture's restart point: a transaction boundary in the binlog, moved only
    # after the broker acknowledged every event before it (connectors/offsets.py).
    "snapsync_capture_offset": """CREATE TABLE IF NOT EXISTS `snapsync_capture_offset` (
  `connector` VARCHAR(64) NOT NULL,
  `binlog_file` VARCHAR(255) NOT NULL,
  `binlog_pos` BIGINT UNSIGNED NOT NULL,
  `gtid` VARCHAR(255) NULL,
  `snapshot_completed` TINYINT(1) NOT NULL,
  `events` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`connector`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}

#: The tables of the signal schema on the source server, by name.
SIGNAL_TABLES: dict[str, str] = {
    # The capture's heartbeat rows (keyed by connector name) and the exporters' watermark
    # probe (key ``watermark-probe``): written into the source so that they come back through
    # its binlog (Debezium's ``heartbeat.action.query`` writes the same row).
    "snapsync_heartbeat": """CREATE TABLE IF NOT EXISTS `snapsync_heartbeat` (
  `connector` VARCHAR(64) NOT NULL,
  `ts_us` BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (`connector`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Debezium's signal table (``signal.data.collection``): read from the binlog by the connector.
    "snapsync_debezium_signal": """CREATE TABLE IF NOT EXISTS `snapsync_debezium_signal` (
  `id` VARCHAR(42) NOT NULL,
  `type` VARCHAR(32) NOT NULL,
  `data` VARCHAR(2048) NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Commands already applied (idempotence under redelivery), in the apply transaction.
    "snapsync_sync_applied": """CREATE TABLE IF NOT EXISTS `snapsync_sync_applied` (
  `command_id` VARCHAR(200) NOT NULL,
  `applied_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`command_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The applier's own writes, recognised when they come back through the change stream.
    # ``path``: the customers the change has been applied in, from its origin (a chain goes on
    # to targets not in it); NULL: snapsync's own write that is never fanned out (an undo).
    "snapsync_sync_echo": """CREATE TABLE IF NOT EXISTS `snapsync_sync_echo` (
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
    "snapsync_sync_seen": """CREATE TABLE IF NOT EXISTS `snapsync_sync_seen` (
  `event_id` VARCHAR(200) NOT NULL,
  `path` JSON NULL,
  `seen_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`event_id`),
  KEY `ix_seen_at` (`seen_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Before-images of what sync wrote, for `snapsync sync undo` (before_json NULL: created).
    # ``after_json``: what the application wrote (MySQL text by column; for a bulk range of
    # created rows, by row id), so that undo can tell whether the item changed since.
    "snapsync_sync_before": """CREATE TABLE IF NOT EXISTS `snapsync_sync_before` (
  `journal_id` BIGINT UNSIGNED NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `target_customer` INT UNSIGNED NOT NULL,
  `row_id` BIGINT UNSIGNED NULL,
  `natural_key` JSON NOT NULL,
  `before_json` JSON NULL,
  `after_json` JSON NULL,
  KEY `ix_journal` (`journal_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Audit records of snapsync's writes to the source (Data Sync applications, initial copies,
    # undo), written in the same transaction as the write; moved into the state store's
    # ``snapsync_audit`` right after (``control/audit.py``: flush_outbox). ``outbox_id`` is the
    # application's journal id: its before-images in ``snapsync_sync_before`` carry it.
    "snapsync_audit_outbox": """CREATE TABLE IF NOT EXISTS `snapsync_audit_outbox` (
  `outbox_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `at` DATETIME(6) NOT NULL,
  `actor` VARCHAR(120) NOT NULL,
  `account_id` INT UNSIGNED NULL,
  `entity` VARCHAR(40) NOT NULL,
  `entity_id` VARCHAR(120) NULL,
  `action` VARCHAR(40) NOT NULL,
  `before_json` JSON NULL,
  `after_json` JSON NULL,
  `detail` JSON NULL,
  PRIMARY KEY (`outbox_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}

#: Migration 2 (issue 23): whom each account's packages are encrypted to (``key_text``, never
#: shown; ``warned_expiry``: the expiry last warned about), where they are shipped (the login
#: key is a 0600 file under snapsync's home, ``identity`` its name; ``host_key`` the pinned one).
SEALING_TABLES: dict[str, str] = {
    "snapsync_recipient": """CREATE TABLE IF NOT EXISTS `snapsync_recipient` (
  `account_id` INT UNSIGNED NOT NULL,
  `kind` VARCHAR(8) NOT NULL,
  `fingerprint` VARCHAR(80) NOT NULL,
  `expires` DATETIME NULL,
  `key_text` MEDIUMTEXT NOT NULL,
  `uids` JSON NULL,
  `warned_expiry` DATETIME NULL,
  `updated_at` DATETIME(6) NOT NULL,
  `updated_by` VARCHAR(120) NOT NULL,
  PRIMARY KEY (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "snapsync_destination": """CREATE TABLE IF NOT EXISTS `snapsync_destination` (
  `account_id` INT UNSIGNED NOT NULL,
  `url` VARCHAR(600) NOT NULL,
  `host_key` VARCHAR(2000) NOT NULL,
  `identity` VARCHAR(200) NOT NULL,
  `public_key` VARCHAR(2000) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  `updated_by` VARCHAR(120) NOT NULL,
  PRIMARY KEY (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}
_FIRST_STATE_TABLES = tuple(STATE_TABLES)
STATE_TABLES.update(SEALING_TABLES)

#: Migration 3 (issue 21): the broker each topic prefix was last seen on, so that a broker
#: replaced or emptied (its topics gone, offsets with them) is noticed and recovered from.
BROKER_TABLES: dict[str, str] = {
    "snapsync_broker": """CREATE TABLE IF NOT EXISTS `snapsync_broker` (
  `topic_prefix` VARCHAR(100) NOT NULL,
  `cluster_id` VARCHAR(200) NOT NULL,
  `generation` INT UNSIGNED NOT NULL,
  `changed_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`topic_prefix`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}
STATE_TABLES.update(BROKER_TABLES)

TABLES: dict[Component, dict[str, str]] = {"state": STATE_TABLES, "signal": SIGNAL_TABLES}


@dataclass(frozen=True)
class Migration:
    """One step of a schema's history: the tables it creates and the columns it adds (to a
    table created by an earlier release), each only when missing."""

    version: int
    description: str
    tables: tuple[str, ...] = ()
    columns: tuple[tuple[str, str, str], ...] = ()  # (table, column, definition)
    renames: tuple[tuple[str, str, str, str], ...] = ()  # (table, old column, new column, definition)
    indexes: tuple[tuple[str, str, str], ...] = ()  # (table, index name, definition)


#: Each schema's migrations, oldest first. Version 1 is the layout of the first release with
#: a schema of its own; tables of earlier releases (in the practice schema) are moved in by
#: ``snapsync db migrate`` first, and version 1 adds the columns they lack.
MIGRATIONS: dict[Component, tuple[Migration, ...]] = {
    "state": (
        Migration(1, "snapsync's state in a schema of its own", _FIRST_STATE_TABLES,
                  columns=(("snapsync_audit", "journal_id", "BIGINT UNSIGNED NULL"),),
                  indexes=(("snapsync_audit", "uk_journal", "UNIQUE KEY `uk_journal` (`journal_id`)"),)),
        Migration(2, "packages encrypted to each account's key and shipped by SFTP", tuple(SEALING_TABLES)),
        Migration(3, "a replaced or emptied broker noticed and recovered from", tuple(BROKER_TABLES)),
    ),
    "signal": (
        Migration(1, "heartbeat, Debezium's signals and Data Sync's marks on the source", tuple(SIGNAL_TABLES),
                  columns=(("snapsync_sync_echo", "path", "JSON NULL AFTER `digest`"),
                           ("snapsync_sync_before", "after_json", "JSON NULL")),
                  # Before-images were keyed by the audit record; now by the journal id, which
                  # for moved records is that same audit id (``snapsync db migrate`` keeps them paired).
                  # (its index on the column follows the rename).
                  renames=(("snapsync_sync_before", "audit_id", "journal_id", "BIGINT UNSIGNED NOT NULL"),)),
    ),
}

#: The schema version this release needs, per schema.
SCHEMA_VERSIONS: dict[Component, int] = {c: len(m) for c, m in MIGRATIONS.items()}

#: Where each table of an earlier release (kept in the practice schema) goes.
LEGACY_HOME: dict[str, Component] = {
    **{t: "state" for t in STATE_TABLES},
    **{t: "signal" for t in SIGNAL_TABLES},
}


def home_of(table: str) -> Component:
    """The schema a table of snapsync's lives in.

    Raises:
        KeyError: not one of snapsync's tables.
    """
    return LEGACY_HOME[table]
