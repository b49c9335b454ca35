"""HTTP Range and If-Range evaluation (RFC 9110 §13.1.5, §14): pure functions, no Django request objects.

Choices this module makes, so callers and clients can rely on them:
- A missing header, a unit other than `bytes`, or any syntactically invalid range-spec (including `bytes=5-2`)
  means "ignore Range": the caller serves the whole representation with 200, as RFC 9110 allows.
- Several ranges: the first satisfiable one is served as a single 206 (no multipart/byteranges). Media players
  and download managers only ever ask for one range; a client asking for several still gets correct bytes with
  a Content-Range saying which.
- A zero-length file has no satisfiable range except a suffix (`-n`), which selects the empty whole: that is
  served as a 200 with an empty body, since `Content-Range` cannot express an empty range.
- Nothing satisfiable → `RangeNotSatisfiable` (the caller answers 416 with `Content-Range: bytes */size`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.http import parse_http_date_safe

# A client has no business sending hundreds of ranges; a long list is a resource-exhaustion probe, so it is ignored.
MAX_RANGES = 64
_INT_RANGE = re.compile(r"^(\d+)-(\d*)$")
_SUFFIX_RANGE = re.compile(r"^-(\d+)$")


class RangeNotSatisfiable(Exception):
    """No range in the header overlaps the representation (→ 416)."""

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


def _parse_specs(header: str) -> list[tuple[int | None, int | None]] | None:
    """The range-specs as (first, last) / (None, suffix) pairs, or None if the header must be ignored."""
    unit, sep, range_set = header.strip().partition("=")
    if not sep or unit.lower() != "bytes":
        return None
    specs: list[tuple[int | None, int | None]] = []
    # RFC 9110 list syntax allows empty elements and optional whitespace around commas.
    for element in (part.strip() for part in range_set.split(",")):
        if not element:
            continue
        if match := _INT_RANGE.match(element):
            first, last = int(match[1]), int(match[2]) if match[2] else None
            if last is not None and last < first:
                return None  # "bytes=5-2" is invalid, not unsatisfiable
            specs.append((first, last))
        elif match := _SUFFIX_RANGE.match(element):
            specs.append((None, int(match[1])))
        else:
            return None
        if len(specs) > MAX_RANGES:
            return None
    return specs or None


def _resolve(spec: tuple[int | None, int | None], size: int) -> ByteRange | None:
    first, last = spec
    if first is None:  # suffix range: the last `last` bytes
        suffix = last or 0
        if suffix == 0 or size == 0:
            return None
        return ByteRange(max(0, size - suffix), size - 1, size)
    if first >= size:
        return None
    return ByteRange(first, size - 1 if last is None else min(last, size - 1), size)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The byte range to serve for a `Range` header, None to serve the whole file, or RangeNotSatisfiable."""
    if not header:
        return None
    specs = _parse_specs(header)
    if specs is None:
        return None
    for spec in specs:
        if (byte_range := _resolve(spec, size)) is not None:
            return byte_range
    if size == 0 and any(first is None and last for first, last in specs):
        return None  # a non-zero suffix of an empty file selects the (empty) whole
    raise RangeNotSatisfiable(size)


def strong_etag(size: int, mtime_ns: int) -> str:
    """A strong validator: the same bytes on disk keep it, any rewrite (size or mtime) changes it."""
    return f'"{size}-{mtime_ns}"'


def if_range_matches(if_range: str | None, *, etag: str, last_modified: int) -> bool:
    """Whether a Range request may be honoured given its If-Range (absent → yes).

    An entity-tag must match by strong comparison (a weak `W/"…"` never does); an HTTP-date must equal the
    Last-Modified second exactly. Anything else, including an unparseable value, means "send it all".
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag and not etag.startswith("W/")
    parsed = parse_http_date_safe(value)
    return parsed is not None and parsed == last_modified
