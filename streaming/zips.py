"""A folder of a job (or the whole job) as a STORED zip that resumes: exact size up front, Range, If-Range, HEAD.

The layout (streaming/ziplayout.py) is computed from the files' names, sizes and mtimes, so any byte range is
served without reading the files before it. CRCs come from the FileChecksum cache or are learned while a
file's bytes pass; learned ones are saved when the response ends (`remember_crcs`), however it ends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.http import http_date

from billing import services as billing
from downloads.models import Job
from downloads.paths import UnsafePath, clean_relative, safe_join
from streaming import ranges
from streaming.files import RangeRefused, _multipart, read_slice  # one multipart layout (nginx's), one reader
from streaming.links import ZIP_SALT, DataDeleted, LinkNotFound, load_token, zip_name
from streaming.models import FileChecksum
from streaming.sending import PRIVATE_HEADERS, Delivery, FileChanged, Segment, coalesce, content_disposition
from streaming.ziplayout import Layout, Member, clean_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """A file of the zip as it was when the layout was made; the body checks it is still that file."""

    jobfile_id: int
    path: Path
    size: int
    mtime_ns: int
    inode: int


@dataclass
class ZipArchive:
    sources: list[Source]
    layout: Layout
    crcs: dict[int, int]  # by index in the archive: cached, then learned
    learned: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.layout.size

    def __iter__(self) -> Iterator[bytes]:
        return self.body((Segment(0, self.layout.size),))

    def is_empty(self) -> bool:
        return not self.sources

    @property
    def etag(self) -> str:
        """Strong: the same files (names, sizes, mtimes, inodes) give the same bytes, hence the same tag."""
        digest = hashlib.sha256()
        for source, member in zip(self.sources, self.layout.members, strict=True):
            digest.update(f"{member.name}\0{source.size}\0{source.mtime_ns}\0{source.inode}\n".encode())
        return f'"z{digest.hexdigest()[:32]}"'

    @property
    def last_modified(self) -> int:
        return max(m.mtime for m in self.layout.members)

    def body(self, segments: Iterable[Segment], trailer: bytes = b"") -> Iterator[bytes]:
        """Each segment's prefix then its bytes of the archive, then the trailer."""
        for segment in segments:
            if segment.prefix:
                yield segment.prefix
            yield from self.layout.iter_range(segment.start, segment.start + segment.length,
                                              data=self._data, crc=self._crc)
        if trailer:
            yield trailer

    # --- file bytes and CRCs ---------------------------------------------------------------------------

    def _open(self, index: int):
        source = self.sources[index]
        fd = os.open(source.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        fh = os.fdopen(fd, "rb", buffering=0)
        st = os.fstat(fh.fileno())
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (source.size, source.mtime_ns, source.inode):
            fh.close()
            raise FileChanged(f"file {source.jobfile_id} changed since the zip's layout was made")
        return fh

    def _data(self, index: int, lo: int, hi: int) -> Iterator[bytes]:
        """Bytes [lo, hi) of file `index`. Without a known CRC, the bytes before `lo` are read for it first, so
        the descriptor that follows can be sent; a slice that reaches the file's end teaches us its CRC."""
        source = self.sources[index]
        with self._open(index) as fh:
            running = None
            if index not in self.crcs:
                running = 0
                for chunk in read_slice(fh, 0, lo, source.jobfile_id):
                    running = zlib.crc32(chunk, running)
            for chunk in read_slice(fh, lo, hi - lo, source.jobfile_id):
                if running is not None:
                    running = zlib.crc32(chunk, running)
                yield chunk
            if running is not None and hi == source.size:
                self._learn(index, running)

    def _crc(self, index: int) -> int:
        if index not in self.crcs:
            with self._open(index) as fh:
                running = 0
                for chunk in read_slice(fh, 0, self.sources[index].size, self.sources[index].jobfile_id):
                    running = zlib.crc32(chunk, running)
            self._learn(index, running)
        return self.crcs[index]

    def _learn(self, index: int, crc: int) -> None:
        self.crcs[index] = crc
        self.learned[index] = crc


@dataclass(frozen=True)
class ZipTarget:
    user: Any
    job: Job
    folder: str
    archive: ZipArchive

    @property
    def size(self) -> int:
        return self.archive.layout.size


def resolve_zip(token: str) -> ZipTarget:
    """A sized, not yet generated zip of a job folder ("" = whole job) for a fresh link of an active owner."""
    data = load_token(token, ZIP_SALT, {"u": int, "j": int, "p": str})
    job = Job.objects.select_related("user").filter(pk=data["j"], user_id=data["u"], user__is_active=True).first()
    if job is None:
        raise LinkNotFound("Not found.")
    return zip_of(job, data["p"])


def zip_of(job: Job, folder: str) -> ZipTarget:
    """The zip of `folder` of `job` (its owner pays for it), or a clean refusal."""
    if job.data_deleted_at is not None:
        raise DataDeleted("The files of this download were removed.")
    if folder:
        try:
            clean_relative(folder)
        except UnsafePath:
            raise LinkNotFound("Not found.") from None
    archive = build_zip(job, folder)
    if archive.is_empty():
        raise LinkNotFound("No files of this folder are on disk.")
    return ZipTarget(job.user, job, folder, archive)


def _plain_file(root: Path, relative: str) -> tuple[Path, os.stat_result] | None:
    """The file at `relative` if it is a regular file reached without any symlink on the way, else None."""
    try:
        candidate = safe_join(root, relative)
        resolved = candidate.resolve(strict=True)
        st = candidate.lstat()
    except (UnsafePath, OSError):
        return None
    if resolved != root.resolve() / relative or not stat.S_ISREG(st.st_mode):
        return None
    return resolved, st


def build_zip(job: Job, folder: str) -> ZipArchive:
    """Stat (not read) every file of `folder` that is on disk; names in the zip are relative to `folder`."""
    prefix = f"{folder}/" if folder else ""
    sources, members, crcs = [], [], {}
    # Filtered again in Python: `startswith` is case-insensitive on SQLite.
    rows = job.files.filter(path__startswith=prefix).select_related("zip_crc").order_by("path")
    for jobfile in rows:
        name = clean_name(jobfile.path[len(prefix):]) if jobfile.path.startswith(prefix) else ""
        found = _plain_file(job.data_dir, jobfile.path) if name else None
        if found is None:
            continue
        path, st = found
        cached = getattr(jobfile, "zip_crc", None)
        if cached is not None and cached.matches(st.st_size, st.st_mtime_ns, st.st_ino):
            crcs[len(sources)] = cached.crc32
        sources.append(Source(jobfile.pk, path, st.st_size, st.st_mtime_ns, st.st_ino))
        members.append(Member(name, st.st_size, st.st_mtime_ns // 1_000_000_000))
    return ZipArchive(sources, Layout(members), crcs)


def remember_crcs(archive: ZipArchive) -> None:
    """Save the CRCs a response learned (called when it ends). A file deleted meanwhile is simply skipped."""
    rows = [FileChecksum(jobfile_id=s.jobfile_id, size=s.size, mtime_ns=s.mtime_ns, inode=s.inode, crc32=crc)
            for s, crc in ((archive.sources[i], crc) for i, crc in archive.learned.items())]
    if not rows:
        return
    try:
        with transaction.atomic():
            FileChecksum.objects.bulk_create(rows, update_conflicts=True, unique_fields=["jobfile"],
                                             update_fields=["size", "mtime_ns", "inode", "crc32", "computed_at"])
    except IntegrityError:
        log.info("zip checksums not saved: a file was removed meanwhile")
    archive.learned.clear()


def plan_zip(target: ZipTarget, *, range_header: str | None = None, if_range: str | None = None) -> Delivery:
    """Range and If-Range evaluated as for a file (streaming/ranges.py), then the quota on the exact length."""
    archive, size = target.archive, target.size
    etag = archive.etag
    byte_ranges = None
    if ranges.if_range_matches(if_range, etag=etag, last_modified=archive.last_modified):
        try:
            byte_ranges = ranges.parse_range(range_header, size)
        except ranges.RangeNotSatisfiable:
            raise RangeRefused(size) from None
    headers = {"Content-Type": "application/zip"}
    trailer = b""
    if not byte_ranges:
        status, segments = 200, (Segment(0, size),)
    elif len(byte_ranges) == 1:
        status, segments = 206, (Segment(byte_ranges[0].start, byte_ranges[0].length),)
        headers["Content-Range"] = byte_ranges[0].content_range
    else:
        status = 206
        segments, trailer, headers["Content-Type"] = _multipart(byte_ranges, "application/zip")
    length = sum(len(s.prefix) + s.length for s in segments) + len(trailer)
    billing.check_transfer(target.user, length)
    headers.update({
        "Content-Length": str(length),
        "Content-Disposition": content_disposition(f"{zip_name(target.job, target.folder)}.zip", inline=False),
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": http_date(archive.last_modified),
        **PRIVATE_HEADERS,
    })
    log_fields = {"job": target.job.pk, "folder": target.folder, "zip": True,
                  "range": ",".join(f"{r.start}-{r.end}" for r in byte_ranges) if byte_ranges else None}
    return Delivery(status, headers, log_fields, segments, trailer)


def read_zip(target: ZipTarget, segments: Iterable[Segment], trailer: bytes = b"") -> Iterator[bytes]:
    """The body, regrouped into CHUNK_SIZE pieces (headers are tens of bytes)."""
    return coalesce(target.archive.body(segments, trailer))
