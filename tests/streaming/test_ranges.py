"""The Range / If-Range rules of streaming/ranges.py as tables. Expected values are what nginx 1.22 answers for
a static file of that size (observed by hand and kept honest by tests/e2e/test_range_vs_nginx.py)."""

import calendar

import pytest
from django.utils.http import http_date

from streaming.ranges import (
    MAX_RANGES,
    ByteRange,
    RangeNotSatisfiable,
    if_range_matches,
    parse_http_time,
    parse_range,
    strong_etag,
)

SIZE = 1000
WHOLE = "200"  # serve the whole file
E416 = "416"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        # not a byte range request at all → whole file
        (None, SIZE, WHOLE),
        ("", SIZE, WHOLE),
        ("items=0-5", SIZE, WHOLE),  # a unit we do not serve
        ("bytes", SIZE, WHOLE),
        ("bytes=", SIZE, WHOLE),  # shorter than 7 characters
        ("bytes =0-1", SIZE, WHOLE),  # not the `bytes=` prefix
        # malformed after `bytes=` → 416 (nginx does not ignore these)
        ("bytes=abc", SIZE, E416),
        ("bytes=-", SIZE, E416),
        ("bytes=0-10,", SIZE, E416),
        ("bytes=,0-10", SIZE, E416),
        ("bytes=0-1,,5-6", SIZE, E416),
        ("bytes=1-2-3", SIZE, E416),
        ("bytes=+1-5", SIZE, E416),
        ("bytes=0x10-20", SIZE, E416),
        ("bytes=- 5", SIZE, E416),  # no space between `-` and a suffix length
        ("bytes=0-1\t", SIZE, (0, 1)),  # surrounding whitespace is not part of the value
        ("bytes=0\t-1", SIZE, E416),  # inside it only spaces are skipped
        ("bytes=٣-٤", SIZE, E416),  # non-ASCII digits
        ("bytes=99999999999999999999-", SIZE, E416),  # beyond 2^63-1
        ("bytes=0-9223372036854775808", SIZE, E416),
        ("bytes=0-9223372036854775807", SIZE, (0, 999)),
        # syntactically fine but selecting nothing → 416
        ("bytes=500-100", SIZE, E416),
        ("bytes=1000-", SIZE, E416),
        ("bytes=1000-2000", SIZE, E416),
        ("bytes=-0", SIZE, E416),
        ("bytes=2000-3000,5000-", SIZE, E416),
        ("bytes=0-10,abc", SIZE, E416),  # a bad element after a good one still spoils the header
        # single ranges
        ("bytes=0-0", SIZE, (0, 0)),
        ("bytes=0-499", SIZE, (0, 499)),
        ("BYTES=0-499", SIZE, (0, 499)),
        ("bytes=00-01", SIZE, (0, 1)),
        ("bytes=500-", SIZE, (500, 999)),
        ("bytes=999-", SIZE, (999, 999)),
        ("bytes=500-5000", SIZE, (500, 999)),  # last-pos past the end is clamped
        ("bytes=-1", SIZE, (999, 999)),
        ("bytes=-500", SIZE, (500, 999)),
        ("bytes=-5000", SIZE, (0, 999)),  # a suffix longer than the file is all of it
        ("bytes=100 - 500", SIZE, (100, 500)),  # spaces around numbers and `-` are accepted
        ("bytes= 0-1", SIZE, (0, 1)),
        ("  bytes=10-19  ", SIZE, (10, 19)),
        # ranges that select nothing are dropped when another one selects something
        ("bytes=5000-6000,10-19", SIZE, (10, 19)),
        ("bytes=-0,3-4", SIZE, (3, 4)),
        ("bytes=0-1, 5-2", SIZE, (0, 1)),
        ("bytes=5-2, 0-1", SIZE, (0, 1)),
        # several ranges: in the order asked, never merged
        ("bytes=0-1,5-6", SIZE, [(0, 1), (5, 6)]),
        ("bytes=0-1 ,5-6", SIZE, [(0, 1), (5, 6)]),
        ("bytes=5-6,0-1", SIZE, [(5, 6), (0, 1)]),
        ("bytes=0-5,3-8", SIZE, [(0, 5), (3, 8)]),  # overlapping
        ("bytes=0-0,0-0", SIZE, [(0, 0), (0, 0)]),  # the same range twice
        ("bytes=0-0,-1", SIZE, [(0, 0), (999, 999)]),
        ("bytes=0-499,500-999", SIZE, [(0, 499), (500, 999)]),  # together exactly the file
        ("bytes=0-500,500-999", SIZE, WHOLE),  # together more than the file → whole file
        ("bytes=0-999,0-999", SIZE, WHOLE),
        ("bytes=0-1,0-", SIZE, WHOLE),
        # empty file: a range starting at 0 selects nothing and means "whole"; any other start is 416
        ("bytes=0-", 0, WHOLE),
        ("bytes=0-0", 0, WHOLE),
        ("bytes=-5", 0, WHOLE),
        ("bytes=-0", 0, WHOLE),
        ("bytes=0-,1-", 0, WHOLE),  # decided at the first element
        ("bytes=1-", 0, E416),
        ("bytes=abc", 0, E416),
        (None, 0, WHOLE),
        # one-byte file
        ("bytes=0-", 1, (0, 0)),
        ("bytes=-1", 1, (0, 0)),
        ("bytes=1-", 1, E416),
    ],
)
def test_parse_range(header, size, expected):
    if expected == E416:
        with pytest.raises(RangeNotSatisfiable) as err:
            parse_range(header, size)
        assert err.value.size == size
    elif expected == WHOLE:
        assert parse_range(header, size) is None
    else:
        wanted = expected if isinstance(expected, list) else [expected]
        assert parse_range(header, size) == [ByteRange(start, end, size) for start, end in wanted]


def test_more_than_max_ranges_serves_the_whole_file():
    at_cap = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES))
    assert parse_range(at_cap, SIZE) == [ByteRange(i, i, SIZE) for i in range(MAX_RANGES)]
    assert parse_range(at_cap + f",{MAX_RANGES}-{MAX_RANGES}", SIZE) is None
    # Only ranges that select something count, and once over the cap the rest is not even read (nginx).
    assert parse_range(at_cap + ",5000-6000", SIZE) is not None
    assert parse_range(at_cap + ",1-1,garbage", SIZE) is None
    assert parse_range("bytes=0-0,1-1,2-2", SIZE, max_ranges=2) is None


def test_byte_range_length_and_content_range():
    byte_range = ByteRange(10, 19, 100)
    assert byte_range.length == 10
    assert byte_range.content_range == "bytes 10-19/100"


ETAG = strong_etag(1234, 1_700_000_000_123_456_789)
MTIME = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        (None, True),
        (ETAG, True),
        (f"  {ETAG} ", True),
        ('"1234-1"', False),
        (f"W/{ETAG}", False),  # weak tags never match If-Range (strong comparison)
        ('"', False),  # too short to be a tag: read as a date, which it is not
        (http_date(MTIME), True),
        (http_date(MTIME + 1), False),
        (http_date(MTIME - 1), False),
        ("Tuesday, 14-Nov-23 22:13:20 GMT", True),  # RFC 850
        ("Tue Nov 14 22:13:20 2023", True),  # asctime
        ("Tue, 14 Nov 2023 22:13:20 UTC", True),  # nginx ignores what follows the time
        ("Tue, 14 Nov 2023 22:13:20", True),
        ("Xyz, 14 Nov 2023 22:13:20 GMT", True),  # and the weekday
        ("not a date", False),
        ("", False),
    ],
)
def test_if_range(if_range, expected):
    assert if_range_matches(if_range, etag=ETAG, last_modified=MTIME) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),
        ("Sun Nov  6 08:49:37 1994", (1994, 11, 6, 8, 49, 37)),
        ("Sun Nov 6 08:49:37 1994", (1994, 11, 6, 8, 49, 37)),
        ("Mon, 01-Jan-01 00:00:00 GMT", (2001, 1, 1, 0, 0, 0)),  # two-digit years below 70 are 20xx
        ("Thu, 01 Jan 1970 00:00:00 GMT", (1970, 1, 1, 0, 0, 0)),
        ("Thu, 29 Feb 2024 12:00:00 GMT", (2024, 2, 29, 12, 0, 0)),
        ("Wed, 31 Dec 2025 23:59:59 GMT", (2025, 12, 31, 23, 59, 59)),
        ("Fri, 30 Jun 2023 01:02:03 GMT", (2023, 6, 30, 1, 2, 3)),
        ("Fri, 30 Jxn 2023 01:02:03 GMT", (2023, 6, 30, 1, 2, 3)),  # nginx tells months by as few letters
        ("Tue, 29 Feb 2023 12:00:00 GMT", None),  # not a leap year
        ("Tue, 31 Apr 2023 12:00:00 GMT", None),
        ("Tue, 14 Nov 2023 24:00:00 GMT", None),
        ("Tue, 14 Nov 2023 23:60:00 GMT", None),
        ("Tue, 14 Xov 2023 22:13:20 GMT", None),
        ("Tue, 14 Nov 23 22:13:20 GMT", None),
        ("Tue, 4 Nov 2023 22:13:20 GMT", None),
        ("Tue, 14 Nov 2023 22:13", None),
        ("2023-11-14T22:13:20Z", None),
        ("", None),
    ],
)
def test_parse_http_time(value, expected):
    parsed = parse_http_time(value)
    assert parsed == (None if expected is None else calendar.timegm((*expected, 0, 0, 0)))


def test_strong_etag_shape():
    assert ETAG == '"1234-1700000000123456789"'
    assert not ETAG.startswith("W/")
