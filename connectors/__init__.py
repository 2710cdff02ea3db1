"""Connectors: getting changes in (embedded binlog capture, Debezium deployment tooling)."""
