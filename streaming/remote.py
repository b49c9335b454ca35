"""Streaming a file another backend still holds (`StreamTarget.source == "backend"`), from the backend's
`stream_source` hook (downloads/backends.py):

- **RemoteLink** (Seedr, once its torrent is finished there and until the files are home): the Range is
  proxied server-side to a fresh file link fetched for this request. The link carries Seedr's credentials
  and never leaves the server. The upstream's status and Content-Range are passed through as they are
  (206, 200 for a server that ignores Range, 416). An upstream that does not answer within STREAM_TIMEOUT
  is a 408 (the player retries); a refused link, a 5xx or a broken connection is a 502; its 429 a 503.
- **PieceSource** (a server with a path mapping): bytes are read from the mapped disk only once the server
  reports their pieces verified (polled every PIECE_POLL_SECONDS) AND the piece reads back from the disk with
  its SHA-1 (a server reports a piece while it may still sit in its write cache); the first missing piece is
  waited for up to STREAM_TIMEOUT (408 before the first byte, a clean end of the body after it), as on the
  engine path.

Memory per stream: one chunk (CHUNK_SIZE) in flight, whatever the range.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from billing import services as billing
from config.errors import DomainError
from config.logging import request_id_var
from downloads import backends
from downloads.backends import BackendError, PieceSource, RemoteLink
from streaming import files, sending
from streaming import stream as streams

log = logging.getLogger(__name__)

PIECE_POLL_SECONDS = 0.5  # how often a waiting reader asks the server for its piece state (one small request)
# Names a server gives a file it has not finished: Transmission's rename-partial-files, qBittorrent's option.
PARTIAL_SUFFIXES = ("", ".part", ".!qB")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_UNSATISFIED = re.compile(r"bytes \*/\d+")


class UpstreamFailed(DomainError):
    code = "upstream_failed"
    http_status = 502


async def respond(request: HttpRequest, target: streams.StreamTarget) -> HttpResponse:
    """The answer to GET/HEAD for a file the job's backend still holds (or a 409 when it cannot stream it)."""
    status, start, length, headers = plan(request, target)
    await sync_to_async(billing.check_transfer)(target.user, length)
    source = await sync_to_async(_source)(target)  # may ask the backend (a Seedr link, a server's layout)
    headers["X-Stream-Source"] = "link" if isinstance(source, RemoteLink) else "pieces"
    if request.method == "HEAD":
        return HttpResponse(status=status, headers=headers)
    streams.check_memory()
    await sync_to_async(streams.acquire_slot)(target.user)
    fields = {"job": target.job.pk, "file": target.jobfile.pk, "source": headers["X-Stream-Source"]}
    try:
        if isinstance(source, RemoteLink):
            return await _proxy(source, target, status, start, length, headers, fields)
        return await _from_pieces(source, target, status, start, length, headers, fields)
    except BaseException:
        await sync_to_async(streams.release_slot)(target.user.pk)
        raise


def _source(target: streams.StreamTarget) -> RemoteLink | PieceSource:
    backend = backends.get_backend(target.job.backend)
    try:
        source = backend.stream_source(target.job, target.jobfile) if backend else None
    except BackendError as exc:
        raise UpstreamFailed(exc.message, code=exc.code) from None
    if source is None:
        raise streams.NotReady("This file is not downloaded yet, and its backend cannot stream it now.")
    return source


def plan(request: HttpRequest, target: streams.StreamTarget) -> tuple[int, int, int, dict[str, str]]:
    """streams.range_plan with the length a complete answer has (HEAD says it; a body drops it, see _proxy)."""
    status, start, length, headers = streams.range_plan(target, request.headers.get("Range"),
                                                        request.headers.get("If-Range"))
    return status, start, length, {**headers, "Content-Length": str(length)}


def _on_done(user_id: int, status: int, fields: dict) -> Callable[[int], None]:
    request_id = request_id_var.get()

    def done(sent: int) -> None:
        streams.release_slot(user_id)
        sending.finish_delivery(user_id, sent, {**fields, "status": status}, request_id=request_id)

    return done


async def _finally(cleanup_coro) -> None:
    """Run the end of a body as its own shielded task: a client that goes away must not skip the metering."""
    cleanup = asyncio.ensure_future(cleanup_coro)
    sending._cleanups.add(cleanup)  # the loop keeps only weak references to tasks
    cleanup.add_done_callback(sending._cleanups.discard)
    await asyncio.shield(cleanup)


# --- a link (Seedr) ------------------------------------------------------------------------------------


def _http() -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.STREAM_TIMEOUT, connect=min(10.0, settings.STREAM_TIMEOUT))
    return httpx.AsyncClient(timeout=timeout, follow_redirects=True)


async def _proxy(link: RemoteLink, target: streams.StreamTarget, status: int, start: int, length: int,
                 headers: dict[str, str], fields: dict) -> HttpResponse:
    size = target.jobfile.size_bytes
    http = _http()
    asked = {"Accept-Encoding": "identity"}
    if status == 206:
        asked["Range"] = f"bytes={start}-{start + length - 1}"
    began = time.monotonic()
    try:
        response = await http.send(http.build_request("GET", link.url, headers=asked), stream=True)
    except httpx.TimeoutException:
        await http.aclose()
        raise streams.StreamTimeout(f"The backend's file server did not answer within "
                                    f"{settings.STREAM_TIMEOUT:g} s; try again.") from None
    except httpx.HTTPError as exc:
        await http.aclose()
        raise UpstreamFailed(f"The backend's file server cannot be reached ({type(exc).__name__}).") from None
    try:
        upstream = response.status_code
        headers = {k: v for k, v in headers.items() if k not in ("Content-Range", "Content-Length")}
        if upstream == 416:
            refused = files.RangeRefused(size)
            value = response.headers.get("content-range", "")
            if _UNSATISFIED.fullmatch(value):
                refused.headers = {"Content-Range": value}  # the upstream's own answer, passed through
            raise refused
        if upstream == 206:
            first, length = _checked_range(response.headers.get("content-range"), size)
            headers["Content-Range"] = f"bytes {first}-{first + length - 1}/{size}"
        elif upstream == 200:
            length = size  # a server that ignores Range sends the whole file: so do we, with its status
        elif upstream == 429 or (upstream == 404 and "retry-after" in response.headers):
            # 429: over Seedr's two reads per link; a 404 with Retry-After: a file host not ready yet.
            raise streams.Busy("The backend's file server is busy; try again in a few seconds.", code="upstream_busy")
        else:
            raise UpstreamFailed(f"The backend's file server answered HTTP {upstream}.",
                                 code="upstream_refused" if upstream < 500 else "upstream_failed")
        declared = response.headers.get("content-length")
        if declared is not None and declared != str(length):
            raise UpstreamFailed("The backend's file server sent a body of another length than its range.")
        # No Content-Length (chunked): a body cut by a stalled upstream must end visibly at once; under daphne an
        # ASGI app cannot close the connection, and a promised length would leave the player waiting for bytes
        # that never come. Content-Range still says the range and the size.
    except BaseException:
        await _close(response, http)
        raise
    fields = {**fields, "upstream": upstream, "ttfb_ms": round((time.monotonic() - began) * 1000)}
    done = _on_done(target.user.pk, upstream, fields)
    return StreamingHttpResponse(_proxied(response, http, length, done), status=upstream, headers=headers)


def _checked_range(value: str | None, size: int) -> tuple[int, int]:
    match = _CONTENT_RANGE.fullmatch(value or "")
    if not match or int(match.group(3)) != size or not int(match.group(1)) <= int(match.group(2)) < size:
        raise UpstreamFailed("The backend's file server answered a range that does not fit the file.")
    return int(match.group(1)), int(match.group(2)) - int(match.group(1)) + 1


async def _proxied(response: httpx.Response, http: httpx.AsyncClient, length: int,
                   done: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The upstream body, chunk by chunk, never more than `length` bytes; a stall or a cut ends it cleanly
    (the player asks again from where it got to)."""
    sent = 0
    try:
        async for chunk in response.aiter_bytes():  # as they arrive: a stall loses nothing received
            chunk = chunk[: length - sent]
            if chunk:
                yield chunk
                sent += len(chunk)
            if sent >= length:
                break
    except httpx.HTTPError as exc:
        log.info("stream cut: upstream", extra={"error": type(exc).__name__, "sent": sent})
    finally:
        await _finally(_end_proxy(response, http, sent, done))


async def _close(response: httpx.Response, http: httpx.AsyncClient) -> None:
    with contextlib.suppress(Exception):
        await response.aclose()
    await http.aclose()


async def _end_proxy(response: httpx.Response, http: httpx.AsyncClient, sent: int,
                     done: Callable[[int], None]) -> None:
    await _close(response, http)
    await sync_to_async(done)(sent)


# --- verified pieces on a mapped disk (a server) ------------------------------------------------------


CONFIRM_BUDGET = 8 << 20  # bytes of pieces read back and hashed per look: a look stays short, the next goes on


def verified_bytes(source: PieceSource, pieces: Sequence[bool], position: int,
                   confirmed: set[int] | None = None) -> int:
    """How many bytes of the file from `position` on lie in verified pieces (0: its piece is not there). With
    piece hashes, a piece also has to read back from the disk with its SHA-1 (`confirmed` remembers those)."""
    confirmed = set() if confirmed is None else confirmed
    absolute = source.offset + position
    index = absolute // source.piece_length
    checked = 0
    while index < len(pieces) and pieces[index]:
        if source.hashes is not None and index not in confirmed:
            if checked >= CONFIRM_BUDGET or not _on_disk(source, index):
                break
            confirmed.add(index)
            checked += source.piece_length
        index += 1
    end = min(index * source.piece_length, source.offset + source.size)
    return max(0, end - absolute)


def _on_disk(source: PieceSource, index: int) -> bool:
    """Whether piece `index` reads back from the mapped disk with its SHA-1 (it may span several files)."""
    if source.hashes is None or index >= len(source.hashes):
        return False
    start = index * source.piece_length
    end = start + source.piece_length
    digest = hashlib.sha1(usedforsecurity=False)
    position = 0
    for path, size in source.files:
        lo, hi = max(start, position), min(end, position + size)
        if lo < hi:
            try:
                fd = _open_path(path)
            except FileNotFoundError:
                return False
            try:
                data = os.pread(fd, hi - lo, lo - position)
            finally:
                os.close(fd)
            if len(data) != hi - lo:
                return False
            digest.update(data)
        position += size
        if position >= end:
            break
    return digest.digest() == source.hashes[index]


def _look(source: PieceSource, position: int, confirmed: set[int]) -> int:
    return verified_bytes(source, source.pieces(), position, confirmed)


async def _wait_verified(source: PieceSource, position: int, wait: float, confirmed: set[int]) -> int:
    """Verified bytes from `position`, asking the server every PIECE_POLL_SECONDS for up to `wait` s."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + wait
    while True:
        try:
            available = await loop.run_in_executor(None, _look, source, position, confirmed)
        except BackendError as exc:
            raise UpstreamFailed(exc.message, code=exc.code) from None
        if available > 0 or time.monotonic() >= deadline:
            return available
        await asyncio.sleep(min(PIECE_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _open_path(path) -> int:
    # Twice round: the server renames "x.part" to "x" when the file completes, maybe between two tries.
    for suffix in PARTIAL_SUFFIXES * 2:
        candidate = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            return os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    raise FileNotFoundError(path)


def _open(source: PieceSource) -> int:
    try:
        return _open_path(source.path)
    except FileNotFoundError:
        raise streams.NotReady("The server reports the file's pieces, but the file is not on the mapped "
                               "disk.") from None


async def _from_pieces(source: PieceSource, target: streams.StreamTarget, status: int, start: int, length: int,
                       headers: dict[str, str], fields: dict) -> HttpResponse:
    began = time.monotonic()
    confirmed: set[int] = set()
    available = await _wait_verified(source, start, settings.STREAM_TIMEOUT, confirmed) if length else 0
    if length and not available:
        raise streams.StreamTimeout(
            f"The first piece needed did not arrive within {settings.STREAM_TIMEOUT:g} s; try again.")
    loop = asyncio.get_running_loop()
    fd = await loop.run_in_executor(None, _open, source) if length else None
    if available < length:
        headers.pop("Content-Length", None)  # it may end early (see _proxy): promise a length only when all is there
    fields = {**fields, "range": f"{start}-{start + length - 1}" if status == 206 else None,
              "ttfb_ms": round((time.monotonic() - began) * 1000)}
    done = _on_done(target.user.pk, status, fields)
    return StreamingHttpResponse(_piece_body(source, fd, start, length, available, confirmed, done),
                                 status=status, headers=headers)


async def _piece_body(source: PieceSource, fd: int | None, start: int, length: int, available: int,
                      confirmed: set[int], done: Callable[[int], None]) -> AsyncIterator[bytes]:
    sent = 0

    async def more(position: int, _remaining: int) -> int:
        return await _wait_verified(source, position, settings.STREAM_TIMEOUT, confirmed)

    try:
        if fd is not None:
            async with contextlib.aclosing(sending.verified_chunks(fd, start, length, available, more)) as chunks:
                async for chunk in chunks:
                    yield chunk
                    sent += len(chunk)
    except UpstreamFailed as exc:
        log.info("stream cut: server", extra={"code": exc.code})
    finally:
        await _finally(_end_pieces(fd, sent, done))


async def _end_pieces(fd: int | None, sent: int, done: Callable[[int], None]) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    await sync_to_async(done)(sent)
