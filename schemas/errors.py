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
    """Configuration is invalid; the message names each bad key and the fix.

    Attributes:
        fields: field name -> what is wrong with it and the fix, when the problem belongs to
            named fields (the web app shows each beside its field); empty otherwise.
    """

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class NotFoundError(ConfigError):
    """The thing asked for does not exist for the caller (or belongs to another account:
    the two cases are told apart nowhere, so an id of another account reveals nothing)."""


class RetriableError(SnapsyncError):
    """A transient failure: the caller should back off and retry."""


class DataError(SnapsyncError):
    """One input item is bad; it goes to a dead-letter destination with this reason."""


def validation_message(exc, title: str, *, fixes: dict[str, str] | None = None,
                       label=lambda key: key, template: str = "  - {label}: {what}{in_parens}") -> str:
    """One line per failing field of a pydantic ``ValidationError``: which field, what is
    wrong and, when known, how to fix it. Values are never quoted back.

    Args:
        title: the first line, e.g. ``invalid snapshot settings:``.
        fixes: field name -> what to do.
        label: how a field is named to the user (``SNAPSYNC_HOME (home)``, ``--format``, ...).
        template: one line, with ``{label}``, ``{what}``, ``{fix}`` and ``{in_parens}`` (`` (fix)`` or empty).
    """
    lines = [title]
    for key, what, fix in field_problems(exc, fixes):
        lines.append(template.format(label=label(key), what=what, fix=fix or "",
                                     in_parens=f" ({fix})" if fix else ""))
    return "\n".join(lines)


def field_problems(exc, fixes: dict[str, str] | None = None) -> list[tuple[str, str, str | None]]:
    """(field, what is wrong, fix or None) for each error of a pydantic ``ValidationError``;
    values are never quoted back."""
    fixes = fixes or {}
    out = []
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else "?"
        what = "is missing" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
        out.append((key, what, fixes.get(key)))
    return out


def config_error(exc, title: str, **kw) -> ConfigError:
    """:func:`validation_message` as a :class:`ConfigError` to raise, with its per-field
    problems (what is wrong only: the fixes name command-line options)."""
    fields: dict[str, str] = {}
    for key, what, _fix in field_problems(exc, kw.get("fixes")):
        fields.setdefault(key, what)
    return ConfigError(validation_message(exc, title, **kw), fields=fields)
