"""The web's side of the web ↔ engine stream channel (the engine's side and the protocol:
downloads/engine/streams.py). Async: a reader may wait up to STREAM_TIMEOUT for a piece, and that wait must
hold no thread of the web process.

The engine holding a job is the one named in `Job.claimed_by`; its channel address is in its heartbeat row
(`ProcessHeartbeat.info["stream_address"]`), fresh within ENGINE_HEARTBEAT_TIMEOUT. Several engines, and
web and engine in separate processes, need nothing more: every web process finds the address the same way.
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

# Added to the engine's own wait before the web gives up on an answer: a live engine answers within its wait.
_ANSWER_GRACE = 5.0
_CONNECT_TIMEOUT = 3.0


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
        self.writer.write(json.dumps(request).encode() + b"\n")
        try:
            await self.writer.drain()
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable("engine_unreachable") from exc
        if not line:
            raise EngineUnavailable("engine_unreachable")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise EngineUnavailable(reply.get("code") or "engine_refused")
        return reply

    async def available(self, offset: int, wait: float) -> int:
        """Verified bytes from `offset` on; 0 when the engine waited `wait` seconds for its piece in vain.
        Asking also moves this reader's deadline window to `offset`."""
        reply = await self._ask({"op": "read", "offset": offset, "wait": wait}, wait + _ANSWER_GRACE)
        return int(reply["available"])

    async def close(self) -> None:
        """The reader is gone: the engine drops its window (and the torrent's deadlines with the last one)."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def open_reader(address: str, job_id: int, path: str) -> EngineReader:
    host, port = _split(address)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise EngineUnavailable("engine_unreachable") from exc
    stream = EngineReader(reader, writer, 0, 0)
    try:
        reply = await stream._ask({"op": "open", "key": channel_key(), "job": job_id, "path": path},
                                  _CONNECT_TIMEOUT + _ANSWER_GRACE)
    except BaseException:
        await stream.close()
        raise
    stream.size, stream.piece_length = int(reply["size"]), int(reply["piece_length"])
    return stream
