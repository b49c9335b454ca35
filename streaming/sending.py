"""How bytes leave: the answer to one request (status, headers, body segments), headers shared by every
download, and metered streams.

Bodies are generators read in CHUNK_SIZE pieces, never a whole file or zip in memory. Under ASGI they must be
*async* iterators: Django consumes a sync iterator on an ASGI server by reading it entirely into a list first.
Delivered bytes are metered (billing) and logged once per delivery when the stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async

from billing import services as billing
from config.logging import request_id_var

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
# Types a browser may render in its own tab. Anything else (HTML, SVG, scripts…) would run in our origin,
# so it is always sent as an attachment, even with ?inline=1.
_INLINE_PREFIXES = ("video/", "audio/", "image/")
_INLINE_EXACT = {"text/plain", "application/ogg"}
_NOT_INLINE = {"image/svg+xml"}
# The link is a credential: keep it out of shared caches and out of the Referer of anything it displays.
PRIVATE_HEADERS = {"Cache-Control": "private", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


class FileChanged(Exception):
    """The file on disk changed between the response headers and its body: the stream is cut short."""


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


async def verified_chunks(fd: int, start: int, length: int, available: int,
                          more: Callable[[int, int], Awaitable[int]]) -> AsyncIterator[bytes]:
    """Up to `length` bytes of `fd` from `start`, one CHUNK_SIZE at a time, never past what is known to be
    verified: `available` bytes at first, then `more(position, remaining)` says how many follow (0: none came
    in time — the body ends early and cleanly, and a player asks again from there)."""
    loop = asyncio.get_running_loop()
    position, remaining = start, length
    while remaining > 0:
        if available <= 0:
            available = await more(position, remaining)
            if available <= 0:
                log.info("stream cut: piece timeout", extra={"offset": position})
                return
        size = min(CHUNK_SIZE, available, remaining)
        chunk = await loop.run_in_executor(None, os.pread, fd, size, position)
        if len(chunk) != size:
            return
        yield chunk
        position += size
        remaining -= size
        available -= size
