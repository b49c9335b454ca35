"""The exact byte layout of a STORED zip, computed from names, sizes and mtimes alone: pure functions.

Why this shape (issue 13, "zips that resume"):
- Entries are STORED, so every offset is known before the first byte: Content-Length, Range and HEAD need
  no read of any file.
- Each entry uses a data descriptor (flag bit 3): the local header carries no CRC (zeros), the CRC follows the
  data. A first, whole download therefore starts at once and computes each CRC while the data passes; the
  CRCs it learns are cached (streaming/models.py FileChecksum). A Range that lands on a descriptor or on the
  central directory needs the CRCs it covers: from the cache, else by reading only the files concerned —
  never the files before the range. With CRCs in the local headers instead, even the first download would
  have to read every file twice, and stall before each one.
- Memory is one small record per entry (name, size, mtime, plus two offsets in `array('q')`s); headers are
  built when they are sent, never held for the whole archive.
- Deterministic: the same members give the same bytes — DOS time from the mtime in UTC (plus the 0x5455
  extended timestamp), no comment, fixed versions and attributes — so a resumed download joins up.
- ZIP64 where needed: an entry of 4 GiB or more (sizes in the ZIP64 extra, 24-byte descriptor), a local
  header past 4 GiB (offset in the central ZIP64 extra), more than 65535 entries or a central directory past
  4 GiB (ZIP64 end record and locator). Names are UTF-8 with flag bit 11 unless plain ASCII.
"""

from __future__ import annotations

import struct
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

LIMIT32 = 0xFFFFFFFF
LIMIT16 = 0xFFFF
_FLAG_DESCRIPTOR = 0x08
_FLAG_UTF8 = 0x800
_VERSION, _VERSION64 = 20, 45
_UNIX = 3
_FILE_MODE = (0o100644 << 16)
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")


class Member(NamedTuple):
    """One file in the archive: its name in the zip, size and mtime (seconds, UTC)."""

    name: str
    size: int
    mtime: int

    @property
    def encoded(self) -> tuple[bytes, int]:
        try:
            return self.name.encode("ascii"), 0
        except UnicodeEncodeError:
            return self.name.encode("utf-8"), _FLAG_UTF8


def clean_name(relative: str) -> str:
    """A safe name inside the zip: no absolute path, no `.`/`..` part, no control character or backslash."""
    parts = []
    for part in relative.split("/"):
        if part in ("", ".", ".."):
            continue
        parts.append("".join("_" if ord(ch) < 32 or ord(ch) == 127 or ch == "\\" else ch for ch in part))
    return "/".join(parts)


def _dos(mtime: int) -> tuple[int, int]:
    """(time, date) in MS-DOS format from a UTC timestamp, clamped to the range DOS can hold."""
    t = time.gmtime(max(mtime, 315532800))  # 1980-01-01
    if t.tm_year > 2107:
        return (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return dos_time, ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


def _timestamp_extra(mtime: int) -> bytes:
    return struct.pack("<HHBL", 0x5455, 5, 1, min(max(mtime, 0), LIMIT32))


class Layout:
    """Offsets of every part of the archive for `members` (in order). `zip64_at` lowers the ZIP64 thresholds,
    for tests only (real 4 GiB files are not needed to exercise the ZIP64 records)."""

    def __init__(self, members: Sequence[Member], *, zip64_at: int = LIMIT32, zip64_entries: int = LIMIT16):
        self.members = members
        self._limit = zip64_at
        self.local_starts = array("q")
        pos = 0
        for member in members:
            self.local_starts.append(pos)
            pos += self.local_header_len(member) + member.size + self.descriptor_len(member)
        self.cd_start = pos
        self.cd_starts = array("q")
        for index in range(len(members)):
            self.cd_starts.append(pos)
            pos += self.central_len(index)
        self.cd_end = pos
        self.tail = self._end_records(zip64_entries)
        self.size = pos + len(self.tail)

    # --- sizes and records of one entry ---------------------------------------------------------------

    def big(self, member: Member) -> bool:
        return member.size >= self._limit

    def local_header_len(self, member: Member) -> int:
        return _LOCAL.size + len(member.encoded[0]) + 9 + (20 if self.big(member) else 0)

    def descriptor_len(self, member: Member) -> int:
        return 24 if self.big(member) else 16

    def local_header(self, index: int) -> bytes:
        member = self.members[index]
        name, flag = member.encoded
        dostime, dosdate = _dos(member.mtime)
        extra = _timestamp_extra(member.mtime)
        size_field = 0
        if self.big(member):  # sizes deferred to the descriptor, as zeros in a ZIP64 extra
            extra += struct.pack("<HHQQ", 0x0001, 16, 0, 0)
            size_field = LIMIT32
        version = _VERSION64 if self.big(member) else _VERSION
        return _LOCAL.pack(b"PK\x03\x04", version, 0, _FLAG_DESCRIPTOR | flag, 0, dostime, dosdate,
                           0, size_field, size_field, len(name), len(extra)) + name + extra

    def descriptor(self, index: int, crc: int) -> bytes:
        member = self.members[index]
        if self.big(member):
            return struct.pack("<4sLQQ", b"PK\x07\x08", crc, member.size, member.size)
        return struct.pack("<4sLLL", b"PK\x07\x08", crc, member.size, member.size)

    def _central_extra(self, index: int) -> tuple[bytes, int, int]:
        member = self.members[index]
        fields = []
        size_field = member.size
        offset_field = self.local_starts[index]
        if self.big(member):
            fields += [member.size, member.size]
            size_field = LIMIT32
        if offset_field >= self._limit:
            fields.append(offset_field)
            offset_field = LIMIT32
        zip64 = struct.pack(f"<HH{len(fields)}Q", 0x0001, 8 * len(fields), *fields) if fields else b""
        return zip64 + _timestamp_extra(member.mtime), size_field, offset_field

    def central_len(self, index: int) -> int:
        return _CENTRAL.size + len(self.members[index].encoded[0]) + len(self._central_extra(index)[0])

    def central(self, index: int, crc: int) -> bytes:
        member = self.members[index]
        name, flag = member.encoded
        extra, size_field, offset_field = self._central_extra(index)
        dostime, dosdate = _dos(member.mtime)
        version = _VERSION64 if extra[:2] == b"\x01\x00" else _VERSION
        return _CENTRAL.pack(b"PK\x01\x02", version, _UNIX, version, 0, _FLAG_DESCRIPTOR | flag, 0, dostime,
                             dosdate, crc, size_field, size_field, len(name), len(extra), 0, 0, 0,
                             _FILE_MODE, offset_field) + name + extra

    def _end_records(self, zip64_entries: int) -> bytes:
        count, cd_size, cd_start = len(self.members), self.cd_end - self.cd_start, self.cd_start
        end = b""
        if count >= zip64_entries or cd_size >= self._limit or cd_start >= self._limit:
            end = (_END64.pack(b"PK\x06\x06", 44, _VERSION64, _VERSION64, 0, 0, count, count, cd_size, cd_start)
                   + _LOCATOR64.pack(b"PK\x06\x07", 0, self.cd_end, 1))
            # In the classic record, a value that needed ZIP64 is the all-ones marker.
            count = LIMIT16 if count >= zip64_entries else count
            cd_size = LIMIT32 if cd_size >= self._limit else cd_size
            cd_start = LIMIT32 if cd_start >= self._limit else cd_start
        return end + _END.pack(b"PK\x05\x06", 0, 0, count, count, cd_size, cd_start, 0)

    # --- serving any byte range --------------------------------------------------------------------------

    def iter_range(self, start: int, end: int, *, data: Callable[[int, int, int], Iterator[bytes]],
                   crc: Callable[[int], int]) -> Iterator[bytes]:
        """The archive's bytes [start, end): headers built here, file bytes from `data(index, lo, hi)`, CRCs
        from `crc(index)` (asked only for the descriptors and central entries inside the range)."""
        pos = start
        if pos < self.cd_start:
            index = bisect_right(self.local_starts, pos) - 1
            while pos < end and pos < self.cd_start:
                member = self.members[index]
                head = self.local_starts[index]
                data_start = head + self.local_header_len(member)
                data_end = data_start + member.size
                if pos < data_start:
                    stop = min(end, data_start)
                    yield self.local_header(index)[pos - head:stop - head]
                    pos = stop
                if pos < end and pos < data_end:
                    stop = min(end, data_end)
                    yield from data(index, pos - data_start, stop - data_start)
                    pos = stop
                desc_end = data_end + self.descriptor_len(member)
                if pos < end and pos < desc_end:
                    stop = min(end, desc_end)
                    yield self.descriptor(index, crc(index))[pos - data_end:stop - data_end]
                    pos = stop
                index += 1
        if pos < end and pos < self.cd_end:
            index = bisect_right(self.cd_starts, pos) - 1
            while pos < end and pos < self.cd_end:
                entry_start = self.cd_starts[index]
                record = self.central(index, crc(index))
                stop = min(end, entry_start + len(record))
                yield record[pos - entry_start:stop - entry_start]
                pos = stop
                index += 1
        if pos < end:
            yield self.tail[pos - self.cd_end:end - self.cd_end]
