"""`/ws/events/`: live job events for the signed-in user (admins may ask for everyone's with ?all=1).

The consumer only authenticates, joins, replays what a reconnecting client missed and relays. Protocol:
first `{"type": "hello", "cursor": N}`, then EventMessage objects (downloads/events.py). Connect with
`?after=<last event id seen>` to first receive every later event, in order, then the live stream, with no
gap and no duplicates. `{"type": "ping"}` is answered with `{"type": "pong", "cursor": <last id sent>}`.

N is the seam between backlog and live stream, not the newest event in the database: the backlog is
(after, N], read from the database; every event above N follows live. N is the relay's position (or `after`
when that is further), and the relay polls, so an event committed just before the connect may be above N:
it arrives live, after the backlog, in order. The promise is about what arrives, not about N.

Refusals accept the socket and then close it with a 44xx code: a close before the handshake completes
reaches clients as a bare HTTP 403 (browsers report 1006), which cannot say why.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.ws_auth import connect_throttled
from downloads.models import JobEvent
from downloads.relay import ADMIN_GROUP, relay, user_group

BACKLOG_PAGE = 1000
CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_THROTTLED = 4429  # too many connects (accounts.ws_auth.connect_throttled); wait, then reconnect


class EventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if await connect_throttled(self.scope, user):
            await self._refuse(CLOSE_THROTTLED)
            return
        if user is None or not user.is_authenticated or not user.is_active:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        params = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        try:
            after = int(params["after"]) if "after" in params else None
        except ValueError:
            await self._refuse(CLOSE_BAD_REQUEST)
            return
        self.user = user
        self.all_users = params.get("all") == "1" and user.is_admin
        self.group = ADMIN_GROUP if self.all_users else user_group(user.pk)
        await relay.ensure_started()
        # Join first, then read the relay's cursor: ids <= cursor come from the backlog, later ones live (the
        # relay passes its cursor over an event before handing it on, so nothing above it reached the group
        # before we joined). Live messages that arrive meanwhile wait in the channel until connect() returns.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        upto = relay.cursor
        self.last_id = max(upto, after or 0)
        await self.send_json({"type": "hello", "cursor": self.last_id})
        if after is not None:
            await self._send_backlog(after, upto)

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return json.loads(text_data)
        except ValueError:
            return None  # a client's garbage must not kill the connection

    async def receive_json(self, content, **kwargs):
        # `last_id` exists once connect() accepted the client (not on a refused socket).
        if isinstance(content, dict) and content.get("type") == "ping" and hasattr(self, "last_id"):
            await self.send_json({"type": "pong", "cursor": self.last_id})

    async def dispatch(self, message):
        # Live events touch no database, so they skip channels' per-message close_old_connections(): a hop
        # to the sync thread that costs more than the send itself when one event fans out to many sockets.
        if message["type"] == "job.event":
            await self.job_event(message)
        else:
            await super().dispatch(message)

    async def job_event(self, message):
        """A relayed event (see relay.layer_message): already JSON, sent as is."""
        if message["id"] <= self.last_id:
            return  # already sent in the backlog
        if message.get("prev", 0) > self.last_id:
            # An earlier message to our group never reached us (the layer dropped it): refill from the
            # database, which has everything the relay has passed on, so the client still sees no gap.
            await self._send_backlog(self.last_id, message["id"] - 1)
        self.last_id = message["id"]
        await self.send(text_data=message["text"])

    async def _send_backlog(self, after: int, upto: int) -> None:
        """Everything in (after, upto], paged so a long absence is replayed whole, never truncated."""
        while after < upto:
            page = await self._backlog_page(after, upto)
            for message in page:
                await self.send_json(message)
                self.last_id = max(self.last_id, message["id"])
            if len(page) < BACKLOG_PAGE:
                return
            after = page[-1]["id"]

    @database_sync_to_async
    def _backlog_page(self, after: int, upto: int) -> list[dict]:
        events = JobEvent.objects.filter(id__gt=after, id__lte=upto).order_by("id")
        if not self.all_users:
            events = events.for_user(self.user)
        return [event.as_message() for event in events[:BACKLOG_PAGE]]
