-- The two tables the Debezium connector's config names in the practice database, created
-- before the connector is deployed (they are what `snapsync connector prepare` is to create;
-- `snapsync connector deploy` does not):
--   snapsync_heartbeat         written by heartbeat.action.query every heartbeat.interval.ms
--                              (without it the heartbeat action query fails)
--   snapsync_debezium_signal   signal.data.collection (incremental snapshots on request)
-- Same DDL as connectors/offsets.py HEARTBEAT_DDL and connectors/debezium.py SIGNAL_DDL
-- (tests/unit/test_compose.py compares them).
USE `practice`;

CREATE TABLE IF NOT EXISTS `snapsync_heartbeat` (
  `connector` VARCHAR(64) NOT NULL,
  `ts_us` BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (`connector`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `snapsync_debezium_signal` (
  `id` VARCHAR(42) NOT NULL,
  `type` VARCHAR(32) NOT NULL,
  `data` VARCHAR(2048) NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
