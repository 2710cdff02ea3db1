"""Error taxonomy shared by every component.

* :class:`FatalError` - stop with a clear message (bad configuration, lost position).
* :class:`RetriableError` - back off and try again (broker or database unavailable).
* :class:`DataError` - one bad input (malformed event); dead-letter it and go on.
"""


class SnapsyncError(Exception):
    """Base of every error snapsync raises on purpose."""


class FatalError(SnapsyncError):
    """The command cannot go on; the message says what to fix."""


class ConfigError(FatalError):
    """Configuration is invalid; the message names each bad key and the fix."""


class RetriableError(SnapsyncError):
    """A transient failure: the caller should back off and retry."""


class DataError(SnapsyncError):
    """One input item is bad; it goes to a dead-letter destination with this reason."""
