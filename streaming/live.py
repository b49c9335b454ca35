"""The web's side of the web ↔ engine stream channel (the engine's side and the protocol:
downloads/engine/streams.py). Async: a reader may wait up to STREAM_TIMEOUT for a piece, and that wait must
hold no thread of the web process.

The engine holding a job is the one named in `Job.claimed_by`; its channel address is in its heartbeat row
(`ProcessHeartbeat.info["stream_address"]`), fresh within ENGINE_HEARTBEAT_TIMEOUT. Several engines, and
web and engine in separate processes, need nothing more: every web process finds the address the same way.

Every wait here has a deadline the caller gives (the stream view: STREAM_TIMEOUT): connecting, sending and
reading an answer all count against it, and the engine is asked to answer a little before it, so a piece
that does not come, an engine that hangs and a socket that stops draining all end in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from downloads.engine.streams import channel_key
from downloads.models import ProcessHeartbeat

# Kept from the caller's time for the engine's answer to travel back: the engine waits that much less.
_ANSWER_GRACE = 1.0
_CONNECT_TIMEOUT = 3.0
_CLOSE_TIMEOUT = 1.0


class EngineUnavailable(Exception):
    """No live engine holds the job, or it cannot be reached, or it no longer has it (`code` says which)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def engine_address(engine_name: str) -> str | None:
    """The stream channel of a live engine, from its heartbeat (None: none, stale, or streaming off)."""
    if not engine_name:
        return None
    fresh = timezone.now() - dt.timedelta(seconds=settings.ENGINE_HEARTBEAT_TIMEOUT)
    info = (ProcessHeartbeat.objects.filter(name=engine_name, kind=ProcessHeartbeat.Kind.ENGINE,
                                            last_seen__gte=fresh).values_list("info", flat=True).first())
    return (info or {}).get("stream_address") or None


def any_engine_streaming() -> bool:
    """Whether some live engine has a stream channel (one that may claim a queued job and stream it)."""
    fresh = timezone.now() - dt.timedelta(seconds=settings.ENGINE_HEARTBEAT_TIMEOUT)
    infos = ProcessHeartbeat.objects.filter(kind=ProcessHeartbeat.Kind.ENGINE, last_seen__gte=fresh)
    return any((info or {}).get("stream_address") for info in infos.values_list("info", flat=True))


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class EngineReader:
    """One reader of one file on the engine: ask how many verified bytes follow an offset."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    size: int
    piece_length: int

    async def _ask(self, request: dict, timeout: float) -> dict:
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(json.dumps(request).encode() + b"\n")
                await self.writer.drain()
                line = await self.reader.readline()
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a line over the reader's limit
            raise EngineUnavailable("engine_unreachable") from exc
        if not line:
            raise EngineUnavailable("engine_unreachable")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise EngineUnavailable(reply.get("code") or "engine_refused")
        return reply

    async def available(self, offset: int, timeout: float) -> int:
        """Verified bytes from `offset` on, answered within `timeout` seconds; 0 when the piece did not arrive
        in that time. Asking also moves this reader's deadline window to `offset`."""
        wait = max(0.0, timeout - min(_ANSWER_GRACE, timeout / 10))
        reply = await self._ask({"op": "read", "offset": offset, "wait": round(wait, 3)}, timeout)
        return int(reply["available"])

    async def close(self) -> None:
        """The reader is gone: the engine drops its window (and the torrent's deadlines with the last one).
        A peer that stops reading cannot hold the close: the connection is aborted after _CLOSE_TIMEOUT."""
        self.writer.close()
        with contextlib.suppress(Exception):  # TimeoutError or a reset: the connection is going away either way
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self.writer.wait_closed()
        self.writer.transport.abort()  # a no-op once closed; else drops what the engine did not read


async def open_reader(address: str, job_id: int, path: str, *, timeout: float = _CONNECT_TIMEOUT) -> EngineReader:
    """A reader of one file on the engine at `address`, connected and opened within `timeout` seconds."""
    host, port = _split(address)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), min(timeout, _CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as exc:
        raise EngineUnavailable("engine_unreachable") from exc
    stream = EngineReader(reader, writer, 0, 0)
    try:
        reply = await stream._ask({"op": "open", "key": channel_key(), "job": job_id, "path": path},
                                  max(0.0, deadline - loop.time()))
    except BaseException:
        await stream.close()
        raise
    stream.size, stream.piece_length = int(reply["size"]), int(reply["piece_length"])
    return stream
