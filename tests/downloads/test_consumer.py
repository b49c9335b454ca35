"""`/ws/events/` through the real ASGI application (origin check, session and API-key auth, relay)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.ws_auth import ApiKeyWebsocketMiddleware, browser_origin_validator
from config.asgi import application
from downloads import consumers
from downloads.models import JobEvent
from downloads.relay import EventRelay, layer_message, relay, user_group
from downloads.routing import websocket_urlpatterns
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobEventFactory, JobFactory

ORIGIN = "http://127.0.0.1:8000"
ALICE_KEY = "flt_alice" + "a" * 40
MALLORY_KEY = "flt_mallory" + "m" * 38
ADMIN_KEY = "flt_admin" + "z" * 40

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_relay(settings):
    """The relay and the channel layer are process singletons: give every test a clean pair."""
    settings.EVENT_RELAY_INTERVAL = 0.02

    def reset():
        relay.cursor, relay._task = None, None
        relay._gap_seen_at.clear()
        async_to_sync(get_channel_layer().flush)()

    reset()
    yield
    reset()


@pytest.fixture
def keys(user, other_user, admin_user):
    ApiKeyFactory(user=user, raw=ALICE_KEY)
    ApiKeyFactory(user=other_user, raw=MALLORY_KEY)
    ApiKeyFactory(user=admin_user, raw=ADMIN_KEY)


def socket(query: str = "", *, key: str | None = None, cookie: str | None = None, origin: str | None = ORIGIN,
           app=application) -> WebsocketCommunicator:
    headers = []
    if origin:
        headers.append((b"origin", origin.encode()))
    if key:
        headers.append((b"authorization", f"Token {key}".encode()))
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(app, f"/ws/events/{query}", headers=headers)


async def open_socket(communicator: WebsocketCommunicator) -> dict:
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return hello


async def receive_ids(communicator: WebsocketCommunicator, count: int) -> list[int]:
    return [(await communicator.receive_json_from(timeout=5))["id"] for _ in range(count)]


async def closed_with(communicator: WebsocketCommunicator) -> int:
    """Refused sockets are accepted and then closed, so the 44xx code reaches browsers too."""
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


new_event = database_sync_to_async(JobEventFactory)


def last_event_id() -> int:
    return JobEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


class TestRefusals:
    def test_no_credentials_is_closed_with_4401(self):
        assert asyncio.run(closed_with(socket())) == consumers.CLOSE_UNAUTHENTICATED

    def test_wrong_api_key_is_closed_with_4401(self, keys):
        assert asyncio.run(closed_with(socket(key="flt_not_a_key"))) == 4401

    def test_inactive_user_is_closed_with_4401(self, keys, user):
        user.is_active = False
        user.save()
        assert asyncio.run(closed_with(socket(key=ALICE_KEY))) == 4401

    @pytest.mark.parametrize("query", ["?after=abc", "?after=1.5", "?after=-"])
    def test_bad_after_is_closed_with_4400(self, keys, query):
        assert asyncio.run(closed_with(socket(query, key=ALICE_KEY))) == consumers.CLOSE_BAD_REQUEST

    def test_foreign_origin_is_refused_before_the_handshake(self, keys):
        async def scenario():
            connected, _ = await socket(key=ALICE_KEY, origin="https://evil.example").connect(timeout=5)
            return connected

        assert asyncio.run(scenario()) is False


class TestLive:
    def test_api_key_client_gets_hello_then_live_events(self, keys, user):
        job = JobFactory(user=user)
        old = JobEventFactory(job=job)

        async def scenario():
            ws = socket(key=ALICE_KEY)
            hello = await open_socket(ws)
            fresh = await new_event(job=job, kind="progress", code="downloading", data={"progress": 0.5})
            message = await ws.receive_json_from(timeout=5)
            await ws.disconnect()
            return hello, fresh, message

        hello, fresh, message = asyncio.run(scenario())
        assert hello == {"type": "hello", "cursor": old.pk}
        assert message == fresh.as_message()
        assert message["data"] == {"progress": 0.5}

    def test_session_client_gets_live_events(self, user):
        browser = Client()
        browser.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
        job = JobFactory(user=user)

        async def scenario():
            ws = socket(cookie=cookie)
            await open_socket(ws)
            fresh = await new_event(job=job)
            ids = await receive_ids(ws, 1)
            await ws.disconnect()
            return fresh.pk, ids

        fresh_id, ids = asyncio.run(scenario())
        assert ids == [fresh_id]

    def test_users_see_only_their_events_and_admins_may_see_all(self, keys, user, other_user, admin_user):
        alice_job, mallory_job = JobFactory(user=user), JobFactory(user=other_user)

        async def scenario():
            sockets = {
                "alice": socket(key=ALICE_KEY),
                "mallory_asking_for_all": socket("?all=1", key=MALLORY_KEY),
                "admin_all": socket("?all=1", key=ADMIN_KEY),
                "admin_own": socket(key=ADMIN_KEY),
            }
            for ws in sockets.values():
                await open_socket(ws)
            events = [await new_event(job=job) for job in (alice_job, mallory_job, alice_job)]
            received = {
                "alice": await receive_ids(sockets["alice"], 2),
                "mallory_asking_for_all": await receive_ids(sockets["mallory_asking_for_all"], 1),
                "admin_all": await receive_ids(sockets["admin_all"], 3),
            }
            for ws in sockets.values():
                assert await ws.receive_nothing(timeout=0.3)
                await ws.disconnect()
            return [e.pk for e in events], received

        (a1, m1, a2), received = asyncio.run(scenario())
        assert received == {"alice": [a1, a2], "mallory_asking_for_all": [m1], "admin_all": [a1, m1, a2]}


class TestBacklog:
    def test_after_replays_missed_events_in_order_then_live(self, keys, user, other_user):
        job, foreign = JobFactory(user=user), JobFactory(user=other_user)
        seen = [JobEventFactory(job=job) for _ in range(2)]
        missed = []
        for _ in range(3):
            missed.append(JobEventFactory(job=job))
            JobEventFactory(job=foreign)  # interleaved: never part of alice's backlog

        async def scenario():
            ws = socket(f"?after={seen[-1].pk}", key=ALICE_KEY)
            hello = await open_socket(ws)
            backlog = await receive_ids(ws, 3)
            live = await new_event(job=job)
            after_live = await receive_ids(ws, 1)
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
            return hello, backlog, live.pk, after_live

        hello, backlog, live_id, after_live = asyncio.run(scenario())
        assert hello["cursor"] == last_event_id() - 1  # everything before the live event
        assert backlog == [e.pk for e in missed]
        assert after_live == [live_id]

    def test_after_zero_replays_the_whole_history(self, keys, user):
        history = [JobEventFactory(job=JobFactory(user=user)) for _ in range(3)]

        async def scenario():
            ws = socket("?after=0", key=ALICE_KEY)
            await open_socket(ws)
            ids = await receive_ids(ws, 3)
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
            return ids

        assert asyncio.run(scenario()) == [e.pk for e in history]

    def test_a_long_backlog_is_paged_not_truncated(self, keys, user, monkeypatch):
        monkeypatch.setattr(consumers, "BACKLOG_PAGE", 2)
        job = JobFactory(user=user)
        history = [JobEventFactory(job=job) for _ in range(7)]

        async def scenario():
            ws = socket("?after=0", key=ALICE_KEY)
            await open_socket(ws)
            ids = await receive_ids(ws, 7)
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
            return ids

        assert asyncio.run(scenario()) == [e.pk for e in history]

    def test_after_beyond_the_cursor_replays_nothing(self, keys, user):
        JobEventFactory(job=JobFactory(user=user))
        ahead = last_event_id() + 100

        async def scenario():
            ws = socket(f"?after={ahead}", key=ALICE_KEY)
            hello = await open_socket(ws)
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
            return hello

        assert asyncio.run(scenario())["cursor"] == ahead

    def test_live_copy_of_a_backlog_event_is_dropped(self, keys, user):
        """The relay may hand an event to the group while the consumer reads the backlog: sent once."""
        job = JobFactory(user=user)
        replayed = JobEventFactory(job=job)

        async def scenario():
            ws = socket("?after=0", key=ALICE_KEY)
            await open_socket(ws)
            backlog = await receive_ids(ws, 1)
            message = layer_message(replayed, json.dumps(replayed.as_message()), prev=0)
            await get_channel_layer().group_send(user_group(user.pk), message)
            fresh = await new_event(job=job)
            live = await receive_ids(ws, 1)
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
            return backlog, fresh.pk, live

        backlog, fresh_id, live = asyncio.run(scenario())
        assert backlog == [replayed.pk]
        assert live == [fresh_id]


    def test_a_message_the_layer_dropped_is_refilled_from_the_database(self, keys, user):
        """`prev` names the group's previous event: if we never got it, the consumer fetches it first."""
        job = JobFactory(user=user)

        async def scenario():
            ws = socket(key=ALICE_KEY)
            await open_socket(ws)
            relay.cursor = 10**12  # park the relay: this test plays its part by hand
            lost = await new_event(job=job)
            arrived = await new_event(job=job)
            text = json.dumps(arrived.as_message())
            await get_channel_layer().group_send(user_group(user.pk), layer_message(arrived, text, prev=lost.pk))
            got = await receive_ids(ws, 2)
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
            return got, [lost.pk, arrived.pk]

        got, expected = asyncio.run(scenario())
        assert got == expected


class PausingLayer:
    """The real layer, except that the relay stops right after handing an event to `group`, as it does
    whenever group_send yields to the event loop (the in-memory layer's does), until `resume` is set."""

    def __init__(self, group: str) -> None:
        self.inner, self.group = get_channel_layer(), group
        self.paused, self.resume = asyncio.Event(), asyncio.Event()

    async def group_send(self, group: str, message: dict) -> None:
        await self.inner.group_send(group, message)
        if group == self.group:
            self.paused.set()
            await self.resume.wait()


def parked_relay(monkeypatch, cursor: int) -> EventRelay:
    """A relay at `cursor` whose polling loop never runs: the test calls relay_once itself."""
    parked = EventRelay()
    parked.cursor = cursor
    parked._task = asyncio.get_running_loop().create_future()  # "running": ensure_started starts nothing
    monkeypatch.setattr(consumers, "relay", parked)
    return parked


class TestReconnectRaces:
    """A reconnect while the relay is mid-way: every missed event arrives, in order, exactly once."""

    def test_event_committed_but_not_yet_relayed_arrives_live_after_the_hello(self, keys, user, monkeypatch):
        """hello's cursor is where the relay is, not the newest row: the rest follows live."""
        job = JobFactory(user=user)
        seen = JobEventFactory(job=job)

        async def scenario():
            relay_ = parked_relay(monkeypatch, seen.pk)
            missed = await new_event(job=job)  # committed after the relay's last poll
            ws = socket(f"?after={seen.pk}", key=ALICE_KEY)
            hello = await open_socket(ws)
            await relay_.relay_once(get_channel_layer())
            fresh = await new_event(job=job)
            await relay_.relay_once(get_channel_layer())
            got = await receive_ids(ws, 2)
            await ws.disconnect()
            return hello, got, [missed.pk, fresh.pk]

        hello, got, expected = asyncio.run(scenario())
        assert hello["cursor"] == expected[0] - 1  # the relay's position: the missed event is not behind it
        assert got == expected

    def test_reconnect_while_the_relay_hands_on_an_event_misses_nothing(self, keys, user, monkeypatch):
        """The relay handed `missed` to alice's group before her new socket joined it and has not finished
        the batch when she reads its cursor: `missed` must come in the backlog, not wait for a later event."""
        job = JobFactory(user=user)
        seen = JobEventFactory(job=job)
        missed = JobEventFactory(job=job)

        async def scenario():
            relay_ = parked_relay(monkeypatch, seen.pk)
            layer = PausingLayer(user_group(user.pk))
            relaying = asyncio.create_task(relay_.relay_once(layer))
            await layer.paused.wait()
            ws = socket(f"?after={seen.pk}", key=ALICE_KEY)
            await open_socket(ws)
            layer.resume.set()
            await relaying
            first = await receive_ids(ws, 1)  # with nothing else happening: no later event to trigger a refill
            fresh = await new_event(job=job)
            await relay_.relay_once(get_channel_layer())
            then = await receive_ids(ws, 1)  # the live stream goes on with no duplicate of `missed`
            await ws.disconnect()
            return first + then, fresh.pk

        got, fresh_id = asyncio.run(scenario())
        assert got == [missed.pk, fresh_id]


class TestClientMessages:
    def test_ping_is_answered_with_the_last_id_sent(self, keys, user):
        job = JobFactory(user=user)

        async def scenario():
            ws = socket(key=ALICE_KEY)
            await open_socket(ws)
            fresh = await new_event(job=job)
            await receive_ids(ws, 1)
            await ws.send_json_to({"type": "ping"})
            pong = await ws.receive_json_from(timeout=5)
            await ws.disconnect()
            return fresh.pk, pong

        fresh_id, pong = asyncio.run(scenario())
        assert pong == {"type": "pong", "cursor": fresh_id}

    def test_garbage_from_the_client_is_ignored(self, keys):
        async def scenario():
            ws = socket(key=ALICE_KEY)
            hello = await open_socket(ws)
            await ws.send_to(text_data="not json")
            await ws.send_json_to(["a", "list"])
            await ws.send_json_to({"type": "ping"})
            pong = await ws.receive_json_from(timeout=5)
            await ws.disconnect()
            return hello, pong

        hello, pong = asyncio.run(scenario())
        assert pong == {"type": "pong", "cursor": hello["cursor"]}


class TestBrowserOriginValidator:
    """The origin check for config/asgi.py: browsers must come from an allowed host; scripts send none."""

    app = browser_origin_validator(AuthMiddlewareStack(ApiKeyWebsocketMiddleware(URLRouter(websocket_urlpatterns))))

    @pytest.mark.parametrize(("origin", "accepted"), [
        (None, True), (ORIGIN, True), ("http://localhost:8000", True), ("https://evil.example", False),
    ])
    def test_origins(self, keys, origin, accepted):
        async def scenario():
            ws = socket(key=ALICE_KEY, origin=origin, app=self.app)
            connected, _ = await ws.connect(timeout=5)
            if connected:
                hello = await ws.receive_json_from(timeout=5)
                assert hello["type"] == "hello"
                await ws.disconnect()
            return connected

        assert asyncio.run(scenario()) is accepted
