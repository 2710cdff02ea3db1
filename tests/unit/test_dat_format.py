import datetime as dt
from decimal import Decimal

import pytest

from snapsync.seed import HARD_TEXTS
from snapsync.sinks.formats.dat import escape_bytes, escape_text, format_row, format_value, unescape_field


@pytest.mark.parametrize("text", [t for t in HARD_TEXTS if t is not None])
def test_escape_round_trip_and_one_line(text):
    esc = escape_text(text)
    assert "\t" not in esc and "\n" not in esc and "\r" not in esc and "\0" not in esc
    assert unescape_field(esc) == text
    assert escape_bytes(text.encode()) == esc.encode()


def test_null_is_distinct_from_empty_and_literal_backslash_n():
    assert format_value(None) == "\\N"
    assert format_value("") == ""
    assert format_value("\\N") == "\\\\N"
    assert unescape_field("\\N") is None and unescape_field("\\\\N") == "\\N"


def test_values_as_mysql_prints_them():
    assert format_value(dt.datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02 03:04:05.000006"
    assert format_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert format_value(Decimal("0.00")) == "0.00"
    assert format_row([1, None, "a\tb"]) == "1\t\\N\ta\\tb\n"
