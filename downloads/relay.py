"""The web process's outbox relay: JobEvent rows, by increasing id, to per-user Channels groups.

Producers in other processes (worker, engine) only insert rows; each web process polls for new ids and
hands them to its own websocket consumers, so live progress needs no shared channel layer or Redis.

Ids are handed out at INSERT but become visible at COMMIT, so on PostgreSQL id 41 can appear after 42.
The relay never skips a hole silently: it holds everything after a hole until the hole fills or is
older than EVENT_RELAY_GAP_GRACE seconds (then it was a rolled-back insert). Delivery is therefore in id
order, and the consumer's backlog (ids up to `cursor`) plus the live stream (ids above it) has no gap
and no overlap: the cursor only passes events that are committed (so a backlog query sees them) or holes
given up on, and it passes an event before handing it to the groups, so every event above the cursor a
consumer read reaches that consumer's group after it joined.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from downloads import heartbeats
from downloads.models import JobEvent, ProcessHeartbeat

log = logging.getLogger(__name__)

ADMIN_GROUP = "events.admins"
BATCH = 500


def user_group(user_id: int) -> str:
    return f"events.user.{user_id}"


def layer_message(event: JobEvent, text: str, prev: int) -> dict:
    """What the relay hands to a group: the event encoded once, not once per client.

    The in-memory layer deep-copies every message for every receiving channel, so a flat dict with the
    JSON text is much cheaper to fan out than the nested event (and the consumer need not re-encode it).
    `prev` is the id of the previous event relayed to the same group: a consumer whose last id is older
    lost a message (the layer drops silently when a slow client's channel is full) and refills from the DB.
    """
    return {"type": "job.event", "id": event.pk, "prev": prev, "text": text}


class EventRelay:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # injectable so the gap grace can be tested without sleeping
        # Every event with id <= cursor is committed and has been (or is being) handed to the groups; every
        # later one will be handed to them after the cursor passes it.
        self.cursor: int | None = None
        self._gap_seen_at: dict[int, float] = {}
        self._task: asyncio.Task | None = None
        self._last_beat = 0.0
        self.last_lag_ms = 0.0
        self._last_sent: dict[str, int] = {}  # group → id of the last event relayed to it

    async def ensure_started(self) -> None:
        """Start polling in this event loop (lazily, on the first websocket connect)."""
        if self._running():
            return
        if self.cursor is None:
            cursor = await database_sync_to_async(_start_cursor)()
            # Many clients connect at once after a restart: only the first to get here sets the cursor.
            if self.cursor is None:
                self.cursor = cursor
        if not self._running():  # checked again: another connect may have started it while we awaited
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-relay")

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                if await self.relay_once(layer) >= BATCH:
                    continue  # catching up after a burst: no pause between full batches
            except Exception:
                log.exception("event relay tick failed")
                await asyncio.sleep(1)
            await asyncio.sleep(settings.EVENT_RELAY_INTERVAL)

    async def relay_once(self, layer) -> int:
        rows = await database_sync_to_async(_events_after)(self.cursor, BATCH)
        ready = self._contiguous(rows)
        for event in ready:
            text = json.dumps(event.as_message())
            # The cursor moves *before* the event is handed on: group_send yields to the event loop, and a
            # consumer that joins meanwhile reads the cursor to decide what its backlog covers. Moved after,
            # a socket joining between the send to its group and the move would get the event from neither
            # the backlog nor the live stream (until a later event's `prev` made it refill).
            self.cursor = event.pk
            for group in (user_group(event.user_id), ADMIN_GROUP):
                prev, self._last_sent[group] = self._last_sent.get(group, 0), event.pk
                await layer.group_send(group, layer_message(event, text, prev))
        if ready:
            self.last_lag_ms = (timezone.now() - ready[-1].created_at).total_seconds() * 1000
        await self._maybe_beat()
        return len(ready)

    def _contiguous(self, rows: list[JobEvent]) -> list[JobEvent]:
        """The prefix of `rows` that follows the cursor without an unexplained hole."""
        ready, expected, now = [], self.cursor + 1, self._clock()
        for row in rows:
            if row.pk != expected:
                first_seen = self._gap_seen_at.setdefault(expected, now)
                if now - first_seen < settings.EVENT_RELAY_GAP_GRACE:
                    break  # maybe still committing: wait for it
                self._gap_seen_at.pop(expected, None)
            ready.append(row)
            expected = row.pk + 1
        for stale in [k for k in self._gap_seen_at if k < expected]:
            self._gap_seen_at.pop(stale, None)
        return ready

    async def _maybe_beat(self) -> None:
        if self._clock() - self._last_beat < 5:
            return
        self._last_beat = self._clock()
        await database_sync_to_async(heartbeats.beat)(
            ProcessHeartbeat.Kind.WEB, cursor=self.cursor, last_lag_ms=round(self.last_lag_ms, 1)
        )


def _start_cursor() -> int:
    """Where a starting relay begins: after the newest event, unless an id among the last seconds' is missing.

    Such a hole may be a transaction still committing (see the module docstring), and no poll ever looks below
    the cursor: starting after MAX(id) would skip that event for good. So the start is the end of the
    contiguous run of ids that follows the newest event older than the gap grace (ids are allocated in time
    order, so one still committing is above it; holes below it are rolled back or pruned); the relay's hole
    logic takes over from the first recent hole. Without holes (always on SQLite) that is MAX(id), and nothing
    already written is sent again.
    """
    settled = timezone.now() - timedelta(seconds=settings.EVENT_RELAY_GAP_GRACE)
    cursor = JobEvent.objects.filter(created_at__lt=settled).order_by("-id").values_list("id", flat=True).first() or 0
    recent = list(JobEvent.objects.filter(id__gt=cursor).order_by("id").values_list("id", flat=True))
    if recent and not cursor:
        cursor = recent[0] - 1  # nothing settled to measure from (a new install, a flushed test database)
    for pk in recent:
        if pk != cursor + 1:
            break
        cursor = pk
    return cursor


def _events_after(cursor: int, limit: int) -> list[JobEvent]:
    return list(JobEvent.objects.filter(id__gt=cursor).order_by("id")[:limit])


relay = EventRelay()
