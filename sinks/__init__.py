"""Sinks: formats (DAT, SQL) that only serialise, destinations that only store, and
the snapshot jobs that put them together into delivered packages."""
