"""Shared models: the practice-database catalog, the change-event envelope and configuration.

Imported by every other package; imports none of them.
"""

#: This release of snapsync (packages' manifests, events' ``source.version``, the web app, the
#: migrations' record). pyproject.toml carries the same number.
VERSION = "0.2.0"
