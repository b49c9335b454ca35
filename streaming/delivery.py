"""File delivery: signed short-lived links, the job's file tree, byte-range streams and streamed zips.

A link is the credential: `/d/f/<token>/<name>` carries a signed {user, file} pair (and `/d/z/…` a signed
{user, job, folder}), so media players and curl can use it without a session. The signature expires after
SIGNED_URL_MAX_AGE seconds; on every use the user must still be active and still own the job, and the path is
resolved again inside the job's folder (no `..`, no symlink leaving it).

Bodies are generators read in CHUNK_SIZE pieces, never a whole file or zip in memory. Under ASGI they must be
*async* iterators: Django consumes a sync iterator on an ASGI server by reading it entirely into a list first.
Delivered bytes are metered (billing) and logged once per delivery when the stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import zipstream
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.http import http_date

from billing import services as billing
from config.errors import DomainError
from config.logging import request_id_var
from streaming import ranges
from downloads.models import Job, JobFile
from downloads.paths import UnsafePath, clean_relative, safe_join

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
FILE_SALT = "flotilla.delivery.file"
ZIP_SALT = "flotilla.delivery.zip"
# Types a browser may render in its own tab. Anything else (HTML, SVG, scripts…) would run in our origin,
# so it is always sent as an attachment, even with ?inline=1.
_INLINE_PREFIXES = ("video/", "audio/", "image/")
_INLINE_EXACT = {"text/plain", "application/ogg"}
_NOT_INLINE = {"image/svg+xml"}
# The link is a credential: keep it out of shared caches and out of the Referer of anything it displays.
_PRIVATE_HEADERS = {"Cache-Control": "private", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


class LinkNotFound(DomainError):
    code = "not_found"
    http_status = 404


class LinkExpired(DomainError):
    code = "link_expired"
    http_status = 410


class DataDeleted(DomainError):
    code = "data_deleted"
    http_status = 410


class RangeRefused(DomainError):
    code = "range_not_satisfiable"
    http_status = 416

    def __init__(self, size: int):
        super().__init__("The requested range is outside the file.")
        self.headers = {"Content-Range": f"bytes */{size}"}


class FileChanged(Exception):
    """The file on disk changed between the response headers and its body: the stream is cut short."""


# --- signed links ------------------------------------------------------------------------------------


def file_token(user_id: int, file_id: int) -> str:
    return signing.dumps({"u": user_id, "f": file_id}, salt=FILE_SALT, compress=True)


def zip_token(user_id: int, job_id: int, folder: str) -> str:
    return signing.dumps({"u": user_id, "j": job_id, "p": folder}, salt=ZIP_SALT, compress=True)


def _load(token: str, salt: str, keys: dict[str, type]) -> dict[str, Any]:
    try:
        data = signing.loads(token, salt=salt, max_age=settings.SIGNED_URL_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkExpired("This download link has expired; open the job again for a fresh one.") from None
    except signing.BadSignature:
        raise LinkNotFound("Not found.") from None
    # Only we can sign, but a payload of the wrong shape (an old format, a bug) must still be a clean 404.
    if not isinstance(data, dict) or set(data) != set(keys):
        raise LinkNotFound("Not found.")
    if any(type(data[key]) is not kind for key, kind in keys.items()):
        raise LinkNotFound("Not found.")
    return data


def file_link(user_id: int, jobfile: JobFile) -> str:
    return reverse("delivery:file", args=[file_token(user_id, jobfile.pk), basename(jobfile.path)])


def zip_link(user_id: int, job: Job, folder: str = "") -> str:
    return reverse("delivery:zip", args=[zip_token(user_id, job.pk, folder), f"{zip_name(job, folder)}.zip"])


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def zip_name(job: Job, folder: str) -> str:
    """A filename-safe name for a zip: the folder's own name, or the job's name for the whole job."""
    raw = basename(folder) if folder else (job.name or "")
    cleaned = "".join("_" if ch in '/\\"' or ord(ch) < 32 or ord(ch) == 127 else ch for ch in raw).strip(" .")
    return cleaned[:150] or f"job-{job.pk}"


# --- the file listing ----------------------------------------------------------------------------------


def job_listing(job: Job, user, absolute: Callable[[str], str]) -> dict[str, Any]:
    """The files API body: flat file list, nested tree and whole-job zip link (no links once data is deleted)."""
    deleted = job.data_deleted_at is not None
    files = []
    for jobfile in job.files.all():
        entry: dict[str, Any] = {
            "id": jobfile.pk,
            "path": jobfile.path,
            "size_bytes": jobfile.size_bytes,
            "completed_bytes": jobfile.completed_bytes,
            "mime_type": jobfile.mime_type,
            "is_complete": jobfile.is_complete,
            "download_url": None if deleted else absolute(file_link(user.pk, jobfile)),
        }
        files.append(entry)
    zip_url = None if deleted or not files else absolute(zip_link(user.pk, job))
    tree = build_tree(files, zip_url=None if deleted else (lambda folder: absolute(zip_link(user.pk, job, folder))))
    return {"job": job.pk, "files": files, "tree": tree, "zip_url": zip_url, "expires_in": settings.SIGNED_URL_MAX_AGE}


@dataclass
class _Dir:
    name: str
    path: str
    size_bytes: int = 0
    dirs: dict[str, _Dir] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)


def build_tree(files: Iterable[dict[str, Any]], *, zip_url: Callable[[str], str] | None) -> list[dict[str, Any]]:
    """Nest flat file entries (with "path") into folders; each folder gets its total size and, if given, a zip."""
    root = _Dir("", "")
    for entry in files:
        *parents, name = entry["path"].split("/")
        node = root
        for depth, part in enumerate(parents):
            node = node.dirs.setdefault(part, _Dir(part, "/".join(parents[: depth + 1])))
            node.size_bytes += entry["size_bytes"]
        node.files.append({"name": name, "path": entry["path"], "type": "file", "id": entry["id"],
                           "size_bytes": entry["size_bytes"], "download_url": entry["download_url"]})
    return _children(root, zip_url)


def _children(node: _Dir, zip_url: Callable[[str], str] | None) -> list[dict[str, Any]]:
    dirs = [
        {"name": d.name, "path": d.path, "type": "dir", "size_bytes": d.size_bytes,
         "zip_url": zip_url(d.path) if zip_url else None, "children": _children(d, zip_url)}
        for d in sorted(node.dirs.values(), key=lambda d: d.name)
    ]
    return dirs + sorted(node.files, key=lambda f: f["name"])


# --- resolving a link to something on disk -------------------------------------------------------------


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
    data = _load(token, FILE_SALT, {"u": int, "f": int})
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


def _read_slice(fh: Any, target: FileTarget, start: int, length: int) -> Iterator[bytes]:
    fh.seek(start)
    remaining = length
    while remaining > 0:
        chunk = fh.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise FileChanged(f"file {target.jobfile.pk} shrank while it was sent")
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
            yield from _read_slice(fh, target, segment.start, segment.length)
        if trailer:
            yield trailer


@dataclass(frozen=True)
class Segment:
    """A piece of a file body: `prefix` (a multipart part's headers, else empty), then `length` bytes at `start`."""

    start: int
    length: int
    prefix: bytes = b""


@dataclass(frozen=True)
class Delivery:
    """What to answer to one request: status, headers and, for a file, which bytes make the body."""

    status: int
    headers: dict[str, str]
    log_fields: dict[str, Any]
    segments: tuple[Segment, ...] = ()
    trailer: bytes = b""

    @property
    def multipart(self) -> bool:
        return len(self.segments) > 1


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
        **_PRIVATE_HEADERS,
    }
    log_fields = {"job": target.job_id, "file": target.jobfile.pk,
                  "range": ",".join(f"{r.start}-{r.end}" for r in byte_ranges) if byte_ranges else None}
    return Delivery(status, headers, log_fields, segments, trailer)


# --- zips -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipTarget:
    user: Any
    job: Job
    folder: str
    stream: zipstream.ZipStream

    @property
    def size(self) -> int:
        return len(self.stream)


def resolve_zip(token: str) -> ZipTarget:
    """A sized, not yet generated zip of a job folder ("" = whole job) for a fresh link of an active owner."""
    data = _load(token, ZIP_SALT, {"u": int, "j": int, "p": str})
    job = Job.objects.select_related("user").filter(pk=data["j"], user_id=data["u"], user__is_active=True).first()
    folder = data["p"]
    if job is None:
        raise LinkNotFound("Not found.")
    if job.data_deleted_at is not None:
        raise DataDeleted("The files of this download were removed.")
    if folder:
        try:
            clean_relative(folder)
        except UnsafePath:
            raise LinkNotFound("Not found.") from None
    stream = build_zip(job, folder)
    if stream.is_empty():
        raise LinkNotFound("No files of this folder are on disk.")
    return ZipTarget(job.user, job, folder, stream)


def _plain_file(root: Path, relative: str) -> Path | None:
    """The file at `relative` if it is a regular file reached without any symlink on the way, else None."""
    try:
        candidate = safe_join(root, relative)
        resolved = candidate.resolve(strict=True)
        st = candidate.lstat()
    except (UnsafePath, OSError):
        return None
    if resolved != root.resolve() / relative or not stat.S_ISREG(st.st_mode):
        return None
    return resolved


def build_zip(job: Job, folder: str) -> zipstream.ZipStream:
    """Queue (not read) every file of `folder` that is on disk; names in the zip are relative to `folder`.

    Entries are STORED (media does not compress) and the stream is sized, so Content-Length is known before the
    first byte. The stream reads each file to its end: a file that changes size while it is sent makes
    zipstream raise, which cuts the response short instead of sending a corrupt archive.
    """
    prefix = f"{folder}/" if folder else ""
    stream = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    # Filtered again in Python: `startswith` is case-insensitive on SQLite.
    for jobfile in job.files.filter(path__startswith=prefix).order_by("path"):
        if not jobfile.path.startswith(prefix):
            continue
        path = _plain_file(job.data_dir, jobfile.path)
        if path is None:
            continue
        stream.add_path(str(path), jobfile.path[len(prefix):], recurse=False)
    return stream


def plan_zip(target: ZipTarget) -> Delivery:
    """Headers of a zip download, after the quota check on its exact (sized) length."""
    size = target.size
    billing.check_transfer(target.user, size)
    headers = {
        "Content-Type": "application/zip",
        "Content-Length": str(size),
        "Content-Disposition": content_disposition(f"{zip_name(target.job, target.folder)}.zip", inline=False),
        "Accept-Ranges": "none",
        **_PRIVATE_HEADERS,
    }
    return Delivery(200, headers, {"job": target.job.pk, "folder": target.folder, "zip": True})


# --- headers ---------------------------------------------------------------------------------------------


def content_disposition(filename: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback `filename` plus the exact UTF-8 name in `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def may_inline(mime_type: str) -> bool:
    base = mime_type.split(";", 1)[0].strip().lower()
    if base in _NOT_INLINE:
        return False
    return base in _INLINE_EXACT or base.startswith(_INLINE_PREFIXES)


# --- metered streams ---------------------------------------------------------------------------------------


def finish_delivery(user_id: int, sent: int, log_fields: dict[str, Any], *, request_id: str = "-") -> None:
    """Meter and log one delivery once its stream has ended (completely or not).

    The stream outlives the request middleware, so the request id is passed in and set again for the log line.
    """
    billing.record_usage(user_id, delivered=sent)
    token = request_id_var.set(request_id)
    try:
        log.info("delivery", extra={"user": user_id, **log_fields, "bytes": sent})
    finally:
        request_id_var.reset(token)


def coalesce(pieces: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Regroup small pieces (zip headers, 64 KiB reads) into about `size` bytes: fewer sends, fewer thread hops."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def metered(chunks: Iterator[bytes], on_done: Callable[[int], None]) -> Iterator[bytes]:
    """Pass chunks through, counting those the server asked past (so written); report the count at the end."""
    sent = 0
    try:
        for chunk in chunks:
            yield chunk
            sent += len(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        on_done(sent)


async def ametered(chunks: Iterator[bytes], on_done: Callable[[int], None]) -> AsyncIterator[bytes]:
    """`metered` for ASGI: disk reads run in a worker thread, one chunk at a time, never the whole body.

    A client that goes away cancels this generator while a read may still be running in its thread. The read is
    shielded and awaited before the sync iterator is closed (closing a running generator raises), and the
    clean-up runs as its own shielded task so that a second cancellation cannot skip the metering.
    """
    loop = asyncio.get_running_loop()
    sent = 0
    pending: asyncio.Future | None = None
    try:
        while True:
            pending = loop.run_in_executor(None, next, chunks, None)
            chunk = await asyncio.shield(pending)
            pending = None
            if chunk is None:
                break
            yield chunk
            sent += len(chunk)
    finally:
        cleanup = asyncio.ensure_future(_finish_async(chunks, pending, sent, on_done))
        _cleanups.add(cleanup)  # the loop keeps only weak references to tasks
        cleanup.add_done_callback(_cleanups.discard)
        await asyncio.shield(cleanup)


_cleanups: set[asyncio.Future] = set()


async def _finish_async(chunks: Iterator[bytes], pending: asyncio.Future | None, sent: int,
                        on_done: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    if pending is not None:
        with contextlib.suppress(Exception):
            await pending
    close = getattr(chunks, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await loop.run_in_executor(None, close)
    await sync_to_async(on_done)(sent)
