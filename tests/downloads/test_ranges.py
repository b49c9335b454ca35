import pytest
from django.utils.http import http_date

from downloads.ranges import MAX_RANGES, ByteRange, RangeNotSatisfiable, if_range_matches, parse_range, strong_etag

SIZE = 1000
UNSATISFIABLE = "416"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        # no header / ignored header → whole file (None)
        (None, SIZE, None),
        ("", SIZE, None),
        ("items=0-5", SIZE, None),  # a unit we do not serve is ignored
        ("bytes", SIZE, None),
        ("bytes=", SIZE, None),
        ("bytes=abc", SIZE, None),
        ("bytes=1-2-3", SIZE, None),
        ("bytes=-", SIZE, None),
        ("bytes=+1-5", SIZE, None),
        ("bytes=0x10-20", SIZE, None),
        ("bytes=5-2", SIZE, None),  # last < first: invalid, so ignored, not 416
        ("bytes=0-1, 5-2", SIZE, None),  # one invalid spec invalidates the header
        ("bytes = 0-1", SIZE, None),
        # single ranges
        ("bytes=0-0", SIZE, (0, 0)),
        ("bytes=0-499", SIZE, (0, 499)),
        ("BYTES=0-499", SIZE, (0, 499)),  # range units are case-insensitive
        ("bytes=500-", SIZE, (500, 999)),
        ("bytes=999-", SIZE, (999, 999)),
        ("bytes=500-5000", SIZE, (500, 999)),  # last-pos past the end is clamped
        ("bytes=-1", SIZE, (999, 999)),
        ("bytes=-500", SIZE, (500, 999)),
        ("bytes=-5000", SIZE, (0, 999)),  # suffix longer than the file → all of it
        ("  bytes=10-19  ", SIZE, (10, 19)),
        # several ranges: the first satisfiable one
        ("bytes=0-9,20-29", SIZE, (0, 9)),
        ("bytes=5000-6000, 10-19", SIZE, (10, 19)),
        ("bytes=-0, 3-4", SIZE, (3, 4)),
        ("bytes=,1-2,", SIZE, (1, 2)),  # empty list elements are allowed
        # unsatisfiable
        ("bytes=1000-", SIZE, UNSATISFIABLE),
        ("bytes=1000-2000", SIZE, UNSATISFIABLE),
        ("bytes=-0", SIZE, UNSATISFIABLE),
        ("bytes=2000-3000,5000-", SIZE, UNSATISFIABLE),
        # zero-length file
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=0-0", 0, UNSATISFIABLE),
        ("bytes=-5", 0, None),  # a suffix of nothing is the (empty) whole: 200
        ("bytes=-0", 0, UNSATISFIABLE),
        (None, 0, None),
        # one-byte file
        ("bytes=0-", 1, (0, 0)),
        ("bytes=-1", 1, (0, 0)),
        ("bytes=1-", 1, UNSATISFIABLE),
    ],
)
def test_parse_range(header, size, expected):
    if expected == UNSATISFIABLE:
        with pytest.raises(RangeNotSatisfiable) as err:
            parse_range(header, size)
        assert err.value.size == size
    elif expected is None:
        assert parse_range(header, size) is None
    else:
        start, end = expected
        assert parse_range(header, size) == ByteRange(start, end, size)


def test_too_many_ranges_are_ignored():
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
    assert parse_range(header, SIZE) is None
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES))
    assert parse_range(header, SIZE) == ByteRange(0, 0, SIZE)


def test_byte_range_length_and_content_range():
    byte_range = ByteRange(10, 19, 100)
    assert byte_range.length == 10
    assert byte_range.content_range == "bytes 10-19/100"


ETAG = strong_etag(1234, 1_700_000_000_123_456_789)
MTIME = 1_700_000_000


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        (None, True),
        (ETAG, True),
        (f"  {ETAG} ", True),
        ('"1234-1"', False),
        (f"W/{ETAG}", False),  # weak tags never match If-Range (strong comparison)
        (http_date(MTIME), True),
        (http_date(MTIME + 1), False),
        (http_date(MTIME - 1), False),
        ("not a date", False),
        ("", False),
    ],
)
def test_if_range(if_range, expected):
    assert if_range_matches(if_range, etag=ETAG, last_modified=MTIME) is expected


def test_strong_etag_shape():
    assert ETAG == '"1234-1700000000123456789"'
    assert not ETAG.startswith("W/")
