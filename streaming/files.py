"""One file of a job behind a signed link: resolved again on every use, sent whole or by Range.

The path is resolved inside the job's folder on every request (no `..`, no symlink leaving it). Range and
If-Range are answered as nginx answers them (streaming/ranges.py, docs/architecture.md "File delivery").
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils.http import http_date

from billing import services as billing
from config.errors import DomainError
from downloads.models import JobFile
from downloads.paths import UnsafePath, safe_join
from streaming import ranges
from streaming.links import FILE_SALT, DataDeleted, LinkNotFound, basename, load_token
from streaming.sending import (
    CHUNK_SIZE,
    PRIVATE_HEADERS,
    Delivery,
    FileChanged,
    Segment,
    content_disposition,
    may_inline,
)


class RangeRefused(DomainError):
    code = "range_not_satisfiable"
    http_status = 416

    def __init__(self, size: int):
        super().__init__("The requested range is outside the file.")
        self.headers = {"Content-Range": f"bytes */{size}"}


@dataclass(frozen=True)
class FileTarget:
    user: Any
    job_id: int
    jobfile: JobFile
    path: Path
    size: int
    mtime_ns: int
    inode: int

    @property
    def mtime(self) -> int:
        return self.mtime_ns // 1_000_000_000


def _owned_job_files(user_id: int):
    return JobFile.objects.select_related("job__user").filter(job__user_id=user_id, job__user__is_active=True)


def resolve_file(token: str) -> FileTarget:
    """The file a link points to, if its signature is fresh, its owner active and it is on disk inside its job."""
    data = load_token(token, FILE_SALT, {"u": int, "f": int})
    jobfile = _owned_job_files(data["u"]).filter(pk=data["f"]).first()
    if jobfile is None:
        raise LinkNotFound("Not found.")
    job = jobfile.job
    if job.data_deleted_at is not None:
        raise DataDeleted("The files of this download were removed.")
    try:
        path = safe_join(job.data_dir, jobfile.path).resolve()
        st = path.stat()
    except (UnsafePath, OSError):
        raise LinkNotFound("Not found.") from None
    if not stat.S_ISREG(st.st_mode):
        raise LinkNotFound("Not found.")
    return FileTarget(job.user, job.pk, jobfile, path, st.st_size, st.st_mtime_ns, st.st_ino)


def read_slice(fh: Any, start: int, length: int, jobfile_id: int) -> Iterator[bytes]:
    """`length` bytes of an open file from `start`, in CHUNK_SIZE reads (files and zips alike)."""
    fh.seek(start)
    remaining = length
    while remaining > 0:
        chunk = fh.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise FileChanged(f"file {jobfile_id} shrank while it was sent")
        remaining -= len(chunk)
        yield chunk


def read_file(target: FileTarget, segments: Iterable[Segment], trailer: bytes = b"") -> Iterator[bytes]:
    """Each segment's prefix then its bytes of the file, in CHUNK_SIZE reads, then the trailer.

    The file is opened lazily (a HEAD never opens it) and must still be what the headers announced.
    """
    fd = os.open(target.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (target.size, target.mtime_ns, target.inode):
            raise FileChanged(f"file {target.jobfile.pk} changed before it was sent")
        for segment in segments:
            if segment.prefix:
                yield segment.prefix
            yield from read_slice(fh, segment.start, segment.length, target.jobfile.pk)
        if trailer:
            yield trailer


def _multipart(byte_ranges: list[ranges.ByteRange], mime: str) -> tuple[tuple[Segment, ...], bytes, str]:
    """Parts, closing delimiter and Content-Type of a multipart/byteranges body, laid out byte for byte as
    nginx lays it out. The boundary has nginx's length (20 characters), so Content-Length equals nginx's too."""
    boundary = secrets.token_hex(10)
    segments = tuple(
        Segment(r.start, r.length,
                f"\r\n--{boundary}\r\nContent-Type: {mime}\r\nContent-Range: {r.content_range}\r\n\r\n".encode())
        for r in byte_ranges
    )
    return segments, f"\r\n--{boundary}--\r\n".encode(), f"multipart/byteranges; boundary={boundary}"


def _body_plan(target: FileTarget, byte_ranges: list[ranges.ByteRange] | None,
               mime: str) -> tuple[int, tuple[Segment, ...], bytes, dict[str, str]]:
    """Status, body segments, trailer and the headers that depend on the ranges (200, 206 single, 206 multi)."""
    if not byte_ranges:
        return 200, (Segment(0, target.size),), b"", {"Content-Type": mime}
    if len(byte_ranges) == 1:
        only = byte_ranges[0]
        return 206, (Segment(only.start, only.length),), b"", {"Content-Type": mime,
                                                               "Content-Range": only.content_range}
    segments, trailer, content_type = _multipart(byte_ranges, mime)
    return 206, segments, trailer, {"Content-Type": content_type}


def plan_file(target: FileTarget, *, range_header: str | None, if_range: str | None, inline: bool) -> Delivery:
    """Evaluate If-Range and Range as nginx does (for HEAD too: nginx answers a ranged HEAD with the 206's
    headers), then the quota on the exact body length."""
    etag = ranges.strong_etag(target.size, target.mtime_ns)
    byte_ranges = None
    if ranges.if_range_matches(if_range, etag=etag, last_modified=target.mtime):
        try:
            byte_ranges = ranges.parse_range(range_header, target.size)
        except ranges.RangeNotSatisfiable:
            raise RangeRefused(target.size) from None
    mime = target.jobfile.mime_type or "application/octet-stream"
    status, segments, trailer, range_headers = _body_plan(target, byte_ranges, mime)
    length = sum(len(s.prefix) + s.length for s in segments) + len(trailer)
    billing.check_transfer(target.user, length)
    headers = {
        **range_headers,
        "Content-Length": str(length),
        "Content-Disposition": content_disposition(basename(target.jobfile.path), inline=inline and may_inline(mime)),
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": http_date(target.mtime),
        **PRIVATE_HEADERS,
    }
    log_fields = {"job": target.job_id, "file": target.jobfile.pk,
                  "range": ",".join(f"{r.start}-{r.end}" for r in byte_ranges) if byte_ranges else None}
    return Delivery(status, headers, log_fields, segments, trailer)
