"""Playing a job's file in a browser: who may, which file, where its bytes come from, and the limits.

`GET|HEAD /api/v1/stream/<job>[/<file>]` (streaming/stream_views.py) answers from one of two sources:
- **disk** — the file is complete and no engine is still writing it (completed jobs of any backend): the
  nginx-exact Range code of streaming/files.py, or a reverse proxy when STREAM_OFFLOAD is set;
- **engine** — a built-in engine holds the job: bytes are read from disk only once the engine says they are
  verified (streaming/live.py, downloads/engine/streams.py), waiting for missing pieces up to STREAM_TIMEOUT;
- **backend** — another backend still holds it: Seedr's file link proxied with Range, or a server's mapped
  disk read piece by piece as the server verifies them (the backend's `stream_source`, streaming/remote.py).

Credentials: a session, an API key, or a signed stream link (`?t=`, a `<video>` cannot send headers), bound
to user, job and file, valid STREAM_LINK_MAX_AGE. Another user's job is a 404, like a missing one.
"""

from __future__ import annotations

import mimetypes
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.urls import reverse

from billing.services import current_plan
from config.errors import DomainError
from downloads import playable
from downloads.models import TERMINAL, Job, JobFile
from downloads.paths import UnsafePath, safe_join
from streaming import files, ranges, sending
from streaming.links import DataDeleted, LinkExpired, LinkNotFound, basename
from streaming.live import any_engine_streaming, engine_address

STREAM_SALT = "flotilla.stream"  # part of every stream link handed out: never rename
ENGINE_BACKEND = "engine"
_SLOT_TTL = 6 * 3600  # a slot counter left by a killed web process heals after this long


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    http_status = 401


class StreamTimeout(DomainError):
    code = "stream_timeout"
    http_status = 408


class Busy(DomainError):
    """503 with Retry-After: over the plan's concurrent streams, memory pressure, or no engine to ask."""

    http_status = 503

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail, code=code)
        self.headers = {"Retry-After": str(settings.STREAM_RETRY_AFTER)}


class Pending(Exception):
    """An answer that is only "not yet": the engine is about to claim the job, or to learn its files. The stream
    view waits (async, within STREAM_TIMEOUT) and asks again rather than send it at once."""


class EngineStarting(Pending, Busy):
    """A live engine has not taken the job yet (queued, starting) or has not added it to its session yet."""

    def __init__(self) -> None:
        super().__init__("The engine has not started this download yet; try again shortly.", code="engine_unavailable")


class FilesPending(Pending, LinkNotFound):
    """The engine holds the job but has no metadata yet (a magnet): which file to play is not known."""


# Statuses in which an engine job may still be picked up, or its metadata still come: worth waiting for.
_PENDING_STATUSES = frozenset({"queued", "starting", "fetching_metadata"})


class NotReady(DomainError):
    code = "not_ready"
    http_status = 409


# --- signed stream links -------------------------------------------------------------------------------


def stream_token(user_id: int, job_id: int, file_id: int) -> str:
    return signing.dumps({"u": user_id, "j": job_id, "f": file_id}, salt=STREAM_SALT, compress=True)


def stream_url(user_id: int, jobfile: JobFile) -> str:
    path = reverse("stream-file", args=[jobfile.job_id, jobfile.pk])
    return f"{path}?t={stream_token(user_id, jobfile.job_id, jobfile.pk)}"


def user_for_token(token: str, job_id: int, file_id: int | None) -> int:
    """The user id a stream link vouches for, if it is fresh and names this job (and file)."""
    try:
        data = signing.loads(token, salt=STREAM_SALT, max_age=settings.STREAM_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkExpired("This stream link has expired; open the player again.") from None
    except signing.BadSignature:
        raise NotAuthenticated("Invalid stream link.") from None
    if not isinstance(data, dict) or any(type(data.get(k)) is not int for k in ("u", "j", "f")):
        raise NotAuthenticated("Invalid stream link.")
    if data["j"] != job_id or (file_id is not None and data["f"] != file_id):
        raise NotAuthenticated("This stream link is for another file.")
    return data["u"]


# --- which file, and where from ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamTarget:
    user: Any
    job: Job
    jobfile: JobFile
    path: Path
    mime: str
    source: str  # "disk", "engine" or "backend"
    engine_address: str | None = None

    @property
    def etag(self) -> str:
        """For a file still downloading: its bytes are fixed by the torrent, so job, file and size name them."""
        return f'"s{self.job.pk}-{self.jobfile.pk}-{self.jobfile.size_bytes}"'


def is_video(jobfile: JobFile) -> bool:
    return playable.is_video(jobfile.path, jobfile.mime_type)


def primary_file(job: Job) -> JobFile | None:
    """The file played when none is named: the largest video, else the largest audio file (downloads/playable.py,
    which also decides where the interface shows a Play button)."""
    candidates = list(job.files.order_by("-size_bytes", "path"))
    for wanted in (is_video, lambda f: playable.is_audio(f.path, f.mime_type)):
        for jobfile in candidates:
            if wanted(jobfile):
                return jobfile
    return None


def mime_of(jobfile: JobFile) -> str:
    return jobfile.mime_type or mimetypes.guess_type(jobfile.path)[0] or "application/octet-stream"


def resolve(user, job_id: int, file_id: int | None) -> StreamTarget:
    """The file to play and its source; 404 for anything not this user's, 409 when nothing can send it yet."""
    job = Job.objects.for_user(user).filter(pk=job_id).first()
    if job is None or not user.is_active:
        raise LinkNotFound("Not found.")
    jobfile = job.files.filter(pk=file_id).first() if file_id is not None else primary_file(job)
    if jobfile is None:
        if file_id is None and _may_learn_files(job):
            raise FilesPending("This download's files are not known yet (fetching metadata).")
        raise LinkNotFound("Not found." if file_id is not None else "This download has no video or audio file.")
    if job.data_deleted_at is not None:
        raise DataDeleted("The files of this download were removed.")
    try:
        path = safe_join(job.data_dir, jobfile.path)
    except UnsafePath:
        raise LinkNotFound("Not found.") from None
    if job.backend == ENGINE_BACKEND and job.status not in TERMINAL and job.claimed_by:
        address = engine_address(job.claimed_by)
        if address:
            return StreamTarget(user, job, jobfile, path, mime_of(jobfile), "engine", address)
    if jobfile.is_complete and _complete_on_disk(path, jobfile.size_bytes):
        return StreamTarget(user, job, jobfile, path, mime_of(jobfile), "disk")
    if job.backend == ENGINE_BACKEND and job.status not in TERMINAL:
        if not job.claimed_by and job.status in _PENDING_STATUSES and any_engine_streaming():
            raise EngineStarting()
        raise Busy("The engine holding this download is not reachable right now.", code="engine_unavailable")
    if job.status not in TERMINAL:  # Seedr or a server may serve it while it is there (streaming/remote.py)
        return StreamTarget(user, job, jobfile, path, mime_of(jobfile), "backend")
    raise NotReady("This file is not downloaded yet, and its backend cannot stream it while downloading.")


def _may_learn_files(job: Job) -> bool:
    """An engine job without files yet whose metadata may still come from a live engine."""
    if job.backend != ENGINE_BACKEND or job.status not in _PENDING_STATUSES or job.files.exists():
        return False
    return engine_address(job.claimed_by) is not None if job.claimed_by else any_engine_streaming()


def _complete_on_disk(path: Path, size: int) -> bool:
    try:
        st = path.resolve().stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def disk_target(target: StreamTarget) -> files.FileTarget:
    """The completed file as streaming/files.py sends it (resolved and checked again, like a signed link)."""
    try:
        path = safe_join(target.job.data_dir, target.jobfile.path).resolve()
        st = path.stat()
    except (UnsafePath, OSError):
        raise LinkNotFound("Not found.") from None
    if not stat.S_ISREG(st.st_mode):
        raise LinkNotFound("Not found.")
    return files.FileTarget(target.user, target.job.pk, target.jobfile, path, st.st_size, st.st_mtime_ns, st.st_ino)


def offload_headers(file_target: files.FileTarget) -> dict[str, str]:
    """The header that hands the sending of a completed file to the reverse proxy (STREAM_OFFLOAD)."""
    mode = settings.STREAM_OFFLOAD.lower()
    if mode == "x-sendfile":
        return {"X-Sendfile": str(file_target.path)}
    relative = file_target.path.relative_to(Path(settings.DOWNLOADS_DIR).resolve())
    return {"X-Accel-Redirect": settings.STREAM_OFFLOAD_PREFIX.rstrip("/") + "/" + quote(str(relative))}


# --- limits --------------------------------------------------------------------------------------------


def _slot_key(user_id: int) -> str:
    return f"stream:active:{user_id}"


def acquire_slot(user) -> None:
    """Count one more stream for the user, or 503 over the plan's `max_concurrent_streams` (0 = no limit).
    The counter is in the cache, so with Redis it is shared by every web process."""
    limit = current_plan(user).max_concurrent_streams
    key = _slot_key(user.pk)
    cache.add(key, 0, timeout=_SLOT_TTL)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=_SLOT_TTL)
        count = 1
    if limit and count > limit:
        release_slot(user.pk)
        raise Busy(f"You already have {limit} streams open (your plan's limit).", code="too_many_streams")


def release_slot(user_id: int) -> None:
    key = _slot_key(user_id)
    try:
        if cache.decr(key) < 0:
            cache.set(key, 0, timeout=_SLOT_TTL)
    except ValueError:
        pass


def active_streams(user_id: int) -> int:
    return max(0, int(cache.get(_slot_key(user_id), 0)))


def memory_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory() -> None:
    """503 before a stream starts when the machine is short of memory (STREAM_MIN_AVAILABLE_MB)."""
    available = memory_available_bytes()
    if available is not None and available < settings.STREAM_MIN_AVAILABLE_MB * 1024 * 1024:
        raise Busy("The server is short of memory; try again in a few seconds.", code="memory_pressure")


# --- the player's numbers -------------------------------------------------------------------------------


def stats(job: Job, jobfile: JobFile) -> dict[str, Any]:
    """The job's swarm numbers and the file's progress: the player turns them (with the video's duration,
    which only the browser knows) into "ready in about N s", and shows them beside its own TTFB and stalls."""
    source = "disk" if jobfile.is_complete else (
        "none" if job.status in TERMINAL else "engine" if job.backend == ENGINE_BACKEND else "backend")
    return {
        "job": job.pk, "file": jobfile.pk, "status": job.status, "source": source,
        "size_bytes": jobfile.size_bytes, "completed_bytes": jobfile.completed_bytes,
        "download_rate": job.download_rate, "peers": job.peers, "seeds": job.seeds,
        "eta_seconds": job.eta_seconds, "active_streams": active_streams(job.user_id),
    }


def range_plan(target: StreamTarget, range_header: str | None, if_range: str | None,
               ) -> tuple[int, int, int, dict[str, str]]:
    """Status, first byte, length and headers (no Content-Length) of a stream of a file that is not complete on
    disk (the engine's, a Seedr link, a server's pieces). Range is read by the same nginx-exact code as for
    completed files; only the first of several ranges is sent (as WebTorrent does: players ask for one)."""
    size = target.jobfile.size_bytes
    byte_ranges = None
    if ranges.if_range_matches(if_range, etag=target.etag, last_modified=-1):
        try:
            byte_ranges = ranges.parse_range(range_header, size)
        except ranges.RangeNotSatisfiable:
            raise files.RangeRefused(size) from None
    headers = {
        "Content-Type": target.mime,
        "Accept-Ranges": "bytes",
        "ETag": target.etag,
        "Content-Disposition": sending.content_disposition(basename(target.jobfile.path),
                                                           inline=sending.may_inline(target.mime)),
        **sending.PRIVATE_HEADERS,
    }
    if byte_ranges:
        first = byte_ranges[0]
        headers["Content-Range"] = first.content_range
        return 206, first.start, first.length, headers
    return 200, 0, size, headers
