"""daphne's Server with backpressure on HTTP response bodies.

daphne's ASGI `send` writes each `http.response.body` chunk into Twisted's transport buffer and returns at once,
so an app streaming a file to a slow client reads the whole file into daphne's memory. Here `send` of a chunk
with `more_body` waits while the socket is not draining: a push producer registered on the request (Twisted's
HTTPChannel forwards the transport's pause/resume to it) clears an event when the send buffer is full (64 KiB)
and sets it once the buffer is empty. What is kept per response is that buffer plus one chunk.

A disconnect releases the wait (the transport calls stopProducing; the request's finish notification fails);
daphne then drops further sends and puts `http.disconnect` in the app's queue, on which Django cancels the
response and its generator's clean-up runs. Websockets and every other message go through daphne unchanged.

A client that stays connected but stops reading would hold its response (and the stream slot, the open file)
forever. As nginx's `send_timeout` (the time between two successive writes), SEND_TIMEOUT bounds how long a
client may take no byte of a body: while a send waits, the bytes the client has not taken (the transport's
buffer and the socket's send queue) are looked at every second at most; once they have not shrunk for
SEND_TIMEOUT seconds the connection is aborted, which goes the disconnect way above.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios

from daphne.server import Server
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

log = logging.getLogger(__name__)


@implementer(IPushProducer)
class Drain:
    """One response's producer side: `writable` is set while the client's socket takes more bytes."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.stopped = False

    def pauseProducing(self) -> None:
        if not self.stopped:
            self.writable.clear()

    def resumeProducing(self) -> None:
        self.writable.set()

    def stopProducing(self) -> None:
        self.stopped = True
        self.writable.set()


class BackpressureServer(Server):
    async def handle_reply(self, protocol, message):
        if message.get("type") != "http.response.body":
            return await super().handle_reply(protocol, message)
        more = message.get("more_body", False)
        drain = protocol.producer if isinstance(getattr(protocol, "producer", None), Drain) else None
        if more and drain is None and self._open(protocol):
            # Registered before the first write, so the pause that write may cause reaches it.
            drain = Drain()
            protocol.registerProducer(drain, True)
            protocol.notifyFinish().addBoth(lambda _: drain.stopProducing())
        if not more and drain is not None:
            self._release(protocol)  # before finish(): Twisted complains about a producer left registered
        try:
            await super().handle_reply(protocol, message)
        except BaseException:
            self._release(protocol)
            raise
        if more and drain is not None:
            await self._wait_drained(protocol, drain)

    @property
    def send_timeout(self) -> float:
        from django.conf import settings  # the app (config.asgi) has configured Django before the first reply

        return settings.SEND_TIMEOUT

    async def _wait_drained(self, protocol, drain: Drain) -> None:
        timeout = self.send_timeout
        if timeout <= 0:
            await drain.writable.wait()
            return
        loop = asyncio.get_running_loop()
        transport = getattr(protocol.channel, "transport", None)
        pending, since = unsent(transport), loop.time()
        while not drain.writable.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drain.writable.wait(), min(1.0, timeout / 4))
            now = unsent(transport)
            if now is not None and pending is not None and now < pending:  # bytes reached the socket meanwhile
                since = loop.time()
            pending = now
            if not drain.writable.is_set() and loop.time() - since >= timeout and transport is not None:
                log.warning("send timeout: client stopped reading, connection closed",
                            extra={"seconds": timeout})
                transport.abortConnection()  # connectionLost → http.disconnect to the app, as a client leaving
                return

    def _open(self, protocol) -> bool:
        details = self.connections.get(protocol)
        return (details is not None and not details.get("disconnected")
                and not protocol.finished and protocol.channel is not None)

    @staticmethod
    def _release(protocol) -> None:
        if isinstance(getattr(protocol, "producer", None), Drain) and protocol.channel is not None:
            protocol.unregisterProducer()


def unsent(transport) -> int | None:
    """Bytes not yet taken by the client: what a Twisted TCP transport holds in its buffers plus what its socket
    still queues (Linux SIOCOUTQ), so a client reading slowly from a large kernel buffer shows progress too.
    None for another kind of transport."""
    try:
        held = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        fileno = transport.getHandle().fileno()
    except (AttributeError, TypeError, OSError):
        return None
    try:
        queued = struct.unpack("i", fcntl.ioctl(fileno, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        queued = 0
    return held + queued
