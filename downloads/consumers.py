"""`/ws/events/`: live job events for the signed-in user (admins may ask for everyone's with ?all=1).

The consumer only authenticates, joins, replays what a reconnecting client missed and relays. Protocol:
every message is an EventMessage (downloads/events.py). Connect with `?after=<last event id seen>` to
first receive every later event, in order, then the live stream, with no duplicates.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from downloads.models import JobEvent
from downloads.relay import ADMIN_GROUP, relay, user_group

BACKLOG_LIMIT = 10_000
CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_REQUEST = 4400


class EventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        params = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            after = int(params["after"][0]) if "after" in params else None
        except ValueError:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.all_users = params.get("all", ["0"])[0] == "1" and user.is_admin
        self.group = ADMIN_GROUP if self.all_users else user_group(user.pk)
        await relay.ensure_started()
        # Join first, then read the relay's cursor: ids <= cursor come from the backlog, later ones live.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.last_id = max(relay.cursor, after or 0)
        if after is not None:
            for message in await self._backlog(user, after, relay.cursor):
                await self.send_json(message)
        await self.send_json({"type": "hello", "cursor": self.last_id})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"type": "pong", "cursor": self.last_id})

    async def job_event(self, message):
        event = message["event"]
        if event["id"] <= self.last_id:
            return  # already sent in the backlog
        self.last_id = event["id"]
        await self.send_json(event)

    @database_sync_to_async
    def _backlog(self, user, after: int, upto: int) -> list[dict]:
        events = JobEvent.objects.filter(id__gt=after, id__lte=upto).order_by("id")
        if not self.all_users:
            events = events.for_user(user)
        return [event.as_message() for event in events[:BACKLOG_LIMIT]]
