"""HTTP Range and If-Range, evaluated exactly as nginx evaluates them for a static file: pure functions.

nginx is the reference (its range filter and `ngx_parse_http_time`, checked side by side against a real nginx
in tests/e2e/test_range_vs_nginx.py), not our own reading of RFC 9110, because clients and players are tested
against nginx. What that means, including where nginx is stricter or laxer than the RFC:
- No `Range`, a value shorter than 7 characters, or one not starting with `bytes=` (any case) → 200, whole file.
- After `bytes=` the whole value must parse, else 416: `bytes=abc`, `bytes=-`, `bytes=0-10,`, `bytes=,0-10`,
  `bytes=1-2-3`. Spaces (not tabs) are allowed around numbers and `-`, but not between `-` and a suffix length.
- A range whose last position is before its first (`bytes=500-100`) or that starts at or past the end selects
  nothing; the header is 416 when nothing at all is selected. Numbers above 2^63-1 are 416.
- A range starting at 0 that selects nothing (only possible on an empty file: `bytes=0-`, `bytes=-5`) → 200.
- Ranges are neither merged nor reordered: two or more satisfiable ranges → multipart/byteranges, in the order
  asked, overlaps included, unless together they ask for more bytes than the file has → 200, whole file.
- More than `MAX_RANGES` satisfiable ranges → 200, whole file (nginx's `max_ranges` directive; nginx has no
  limit by default, the side-by-side test runs it with `max_ranges` set to ours).
- If-Range: a value ending in `"` is an entity-tag compared byte for byte with ours (strong, so `W/"…"` never
  matches); anything else is parsed as an HTTP date (as leniently as nginx does) and must equal the
  Last-Modified second. No match → 200 whole file, whatever the Range says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Apache's MaxRanges default. Each range becomes a part with ~100 bytes of headers: a cap keeps a header full
# of one-byte ranges from turning into thousands of tiny writes.
MAX_RANGES = 200
_OFF_T_MAX = 2**63 - 1
# One element of the range set. Spaces only (nginx skips ' ', never '\t'); ASCII digits only.
_ELEMENT = re.compile(r" *(?:([0-9]+) *- *([0-9]*) *|-([0-9]+) *)")


class RangeNotSatisfiable(Exception):
    """The Range header selects no byte of the representation, or does not parse (→ 416)."""

    def __init__(self, size: int):
        super().__init__(f"bytes */{size}")
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range inside a representation of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class _Ignore(Exception):
    """nginx's NGX_DECLINED: serve the whole file with 200."""


def _element(text: str, size: int) -> tuple[int, int]:
    """One range-spec as a half-open [start, end) clamped to the file (possibly empty), or 416."""
    match = _ELEMENT.fullmatch(text)
    if match is None:
        raise RangeNotSatisfiable(size)
    first, last, suffix = match.groups()
    numbers = [int(n) for n in (first, last, suffix) if n]
    if any(n > _OFF_T_MAX for n in numbers):
        raise RangeNotSatisfiable(size)
    if suffix is not None:
        length = int(suffix)
        return (size - length if length < size else 0), size
    start = int(first)
    if not last:
        return start, size
    return start, min(int(last) + 1, size)


def _select(range_set: str, size: int, max_ranges: int) -> list[tuple[int, int]]:
    """The satisfiable ranges in order; elements are read left to right and the first verdict wins."""
    selected: list[tuple[int, int]] = []
    total = 0
    for text in range_set.split(","):
        start, end = _element(text, size)
        if start < end:
            selected.append((start, end))
            total += end - start
            if len(selected) > max_ranges:
                raise _Ignore
        elif start == 0:
            raise _Ignore
    if not selected:
        raise RangeNotSatisfiable(size)
    if total > size:
        raise _Ignore  # overlapping ranges asking for more than the whole file
    return selected


def parse_range(header: str | None, size: int, *, max_ranges: int = MAX_RANGES) -> list[ByteRange] | None:
    """The ranges to send (one → a single 206, several → multipart), None for the whole file (200), or
    RangeNotSatisfiable (416)."""
    value = (header or "").strip(" \t")
    if len(value) < 7 or value[:6].lower() != "bytes=":
        return None
    try:
        selected = _select(value[6:], size, max_ranges)
    except _Ignore:
        return None
    return [ByteRange(start, end - 1, size) for start, end in selected]


def strong_etag(size: int, mtime_ns: int) -> str:
    """A strong validator: the same bytes on disk keep it, any rewrite (size or mtime) changes it."""
    return f'"{size}-{mtime_ns}"'


def if_range_matches(if_range: str | None, *, etag: str, last_modified: int) -> bool:
    """Whether a Range request may be honoured given its If-Range (absent → yes), as nginx decides it."""
    if if_range is None:
        return True
    value = if_range.strip(" \t")
    if len(value) >= 2 and value.endswith('"'):
        return value == etag
    return parse_http_time(value) == last_modified


# --- HTTP dates, read the way nginx reads them ------------------------------------------------------------

_MDAY = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_RFC822, _RFC850, _ISOC = "rfc822", "rfc850", "isoc"


class _Cursor:
    """Reads a string like nginx reads a NUL-terminated buffer: past the end every character is NUL."""

    def __init__(self, text: str):
        self.text = text
        self.end = len(text)
        self.p = 0

    def at(self, offset: int = 0) -> str:
        index = self.p + offset
        return self.text[index] if 0 <= index < self.end else "\0"

    def digits(self, count: int) -> int | None:
        chars = [self.at(i) for i in range(count)]
        if not all("0" <= ch <= "9" for ch in chars):
            return None
        self.p += count
        return int("".join(chars))

    def expect(self, char: str) -> bool:
        ok = self.at() == char
        self.p += 1
        return ok


def _month(cur: _Cursor) -> int | None:
    """nginx tells months apart by as few letters as it needs ("Jxn" is June): the same leniency here."""
    first, second, third = cur.at(), cur.at(1), cur.at(2)
    months = {
        "J": 0 if second == "a" else 5 if third == "n" else 6,
        "F": 1,
        "M": 2 if third == "r" else 4,
        "A": 3 if second == "p" else 7,
        "S": 8, "O": 9, "N": 10, "D": 11,
    }
    return months.get(first)


def _date_head(cur: _Cursor) -> tuple[str, int | None] | None:
    """Skip the weekday; return the format and, except for asctime, the day of the month."""
    fmt = ""
    while cur.p < cur.end and cur.at() not in ", ":
        cur.p += 1
    if cur.at() == " ":
        fmt = _ISOC
    cur.p += 1
    while cur.p < cur.end and cur.at() == " ":
        cur.p += 1
    if cur.end - cur.p < 18:
        return None
    if fmt == _ISOC:
        return fmt, None
    day = cur.digits(2)
    if day is None:
        return None
    if cur.at() == " ":
        if cur.end - cur.p < 18:
            return None
        fmt = _RFC822
    elif cur.at() == "-":
        fmt = _RFC850
    else:
        return None
    cur.p += 1
    return fmt, day


def _date_year_and_day(cur: _Cursor, fmt: str, day: int | None) -> tuple[int | None, int | None]:
    """The year (None for asctime, which puts it last) and the day, after the month's separator."""
    if fmt == _RFC822:
        return cur.digits(4), day
    if fmt == _RFC850:
        year = cur.digits(2)
        return (None if year is None else year + (2000 if year < 70 else 1900)), day
    if cur.at() == " ":
        cur.p += 1
    if not "0" <= cur.at() <= "9":
        return None, None
    day = int(cur.at())
    cur.p += 1
    if cur.at() != " ":
        second = cur.digits(1)
        if second is None:
            return None, None
        day = day * 10 + second
    return None, day if cur.end - cur.p >= 14 else None


def _clock(cur: _Cursor) -> tuple[int, int, int] | None:
    if not cur.expect(" "):
        return None
    hour = cur.digits(2)
    if hour is None or not cur.expect(":"):
        return None
    minute = cur.digits(2)
    if minute is None or not cur.expect(":"):
        return None
    second = cur.digits(2)
    return None if second is None else (hour, minute, second)


def _epoch(year: int, month: int, day: int, clock: tuple[int, int, int]) -> int | None:
    hour, minute, second = clock
    if hour > 23 or minute > 59 or second > 59:
        return None
    if day == 29 and month == 1:
        if year % 4 or (year % 100 == 0 and year % 400):
            return None
    elif day > _MDAY[month]:
        return None
    if month - 1 <= 0:  # Gauss' formula counts from March 1
        month, year = month - 1 + 12, year - 1
    else:
        month -= 1
    days = 365 * year + year // 4 - year // 100 + year // 400 + 367 * month // 12 - 30 + day - 1 - 719527 + 59
    return days * 86400 + hour * 3600 + minute * 60 + second


def parse_http_time(value: str) -> int | None:
    """Seconds since the epoch for an RFC 1123, RFC 850 or asctime date, read as nginx reads them (it ignores
    the weekday and anything after the time, e.g. a zone other than GMT), or None."""
    cur = _Cursor(value)
    head = _date_head(cur)
    if head is None:
        return None
    fmt, day = head
    month = _month(cur)
    if month is None:
        return None
    cur.p += 3
    if fmt != _ISOC and not cur.expect(" " if fmt == _RFC822 else "-"):
        return None
    if fmt == _ISOC:
        cur.p += 1
    year, day = _date_year_and_day(cur, fmt, day)
    if day is None or (year is None and fmt != _ISOC):
        return None
    clock = _clock(cur)
    if clock is None:
        return None
    if fmt == _ISOC:
        if not cur.expect(" "):
            return None
        year = cur.digits(4)
        if year is None:
            return None
    return _epoch(year, month, day, clock)
