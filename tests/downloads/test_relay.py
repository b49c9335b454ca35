"""The web process's outbox relay: id order, hole handling, and delivery to per-user and admin groups."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer
from django.utils import timezone

from downloads.models import JobEvent
from downloads.relay import ADMIN_GROUP, EventRelay, user_group
from tests.downloads.factories import JobEventFactory, JobFactory


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# Each scenario: starting cursor, then steps of (seconds since start, ids above the cursor that are
# visible in the table, ids the relay must hand on). The grace is 2 s.
SCENARIOS = {
    "contiguous ids all go": (10, [(0.0, [11, 12, 13], [11, 12, 13])]),
    "nothing new": (10, [(0.0, [], [])]),
    "a hole younger than the grace holds everything after it": (
        10, [(0.0, [12, 13], []), (1.9, [12, 13], [])],
    ),
    "a hole older than the grace is skipped": (10, [(0.0, [12, 13], []), (2.0, [12, 13], [12, 13])]),
    "the grace starts when the hole is first seen": (
        10, [(5.0, [12], []), (6.9, [12], []), (7.0, [12], [12])],
    ),
    "a hole filled later is delivered in order": (
        10, [(0.0, [11, 13, 14], [11]), (1.0, [12, 13, 14], [12, 13, 14])],
    ),
    "a wide hole counts as one": (10, [(0.0, [14], []), (2.5, [14], [14])]),
    "each hole has its own grace": (
        10, [(0.0, [12, 14], []), (2.1, [12, 14], [12]), (3.0, [14], []), (4.1, [14], [14])],
    ),
}


@pytest.mark.parametrize(("cursor", "steps"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_contiguous_gap_logic(settings, cursor, steps):
    settings.EVENT_RELAY_GAP_GRACE = 2.0
    clock = FakeClock()
    relay = EventRelay(clock=clock)
    relay.cursor = cursor
    start = clock.now
    for elapsed, visible, expected in steps:
        clock.now = start + elapsed
        ready = relay._contiguous([JobEvent(pk=pk) for pk in visible])
        assert [row.pk for row in ready] == expected, f"at +{elapsed}s"
        if ready:
            relay.cursor = ready[-1].pk  # what relay_once does after handing them on
    assert all(hole > relay.cursor for hole in relay._gap_seen_at)  # no memory of passed holes


async def drain(layer: InMemoryChannelLayer, channel: str) -> list[int]:
    """Ids of every event waiting in `channel`, in arrival order."""
    ids = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=0.05)
        except TimeoutError:
            return ids
        assert message["type"] == "job.event"
        assert json.loads(message["text"])["id"] == message["id"]  # encoded once, for every client
        ids.append(message["id"])


@pytest.mark.django_db(transaction=True)
def test_relay_once_delivers_to_user_groups_and_admins(user, other_user):
    alice_job, mallory_job = JobFactory(user=user), JobFactory(user=other_user)
    before = JobEventFactory(job=alice_job).pk  # already relayed (ids go on across tests: not max + 1)
    events = [JobEventFactory(job=job) for job in (alice_job, mallory_job, alice_job, alice_job, mallory_job)]
    alice_ids = [e.pk for e in events if e.user_id == user.pk]
    mallory_ids = [e.pk for e in events if e.user_id == other_user.pk]

    async def scenario():
        layer = InMemoryChannelLayer()
        channels = {name: await layer.new_channel() for name in ("alice", "mallory", "admin")}
        await layer.group_add(user_group(user.pk), channels["alice"])
        await layer.group_add(user_group(other_user.pk), channels["mallory"])
        await layer.group_add(ADMIN_GROUP, channels["admin"])
        relay = EventRelay()
        relay.cursor = before
        delivered = await relay.relay_once(layer)
        again = await relay.relay_once(layer)  # nothing new: nothing sent twice
        received = {name: await drain(layer, channel) for name, channel in channels.items()}
        return relay, delivered, again, received

    relay, delivered, again, received = asyncio.run(scenario())
    assert (delivered, again) == (5, 0)
    assert relay.cursor == events[-1].pk
    assert received == {"alice": alice_ids, "mallory": mallory_ids, "admin": [e.pk for e in events]}


@pytest.mark.django_db(transaction=True)
def test_relay_once_waits_for_a_hole_then_skips_it(user, settings):
    settings.EVENT_RELAY_GAP_GRACE = 2.0
    job = JobFactory(user=user)
    first, missing, last = (JobEventFactory(job=job) for _ in range(3))
    JobEvent.objects.filter(pk=missing.pk).delete()  # an insert that was never committed
    clock = FakeClock()

    async def scenario():
        layer = InMemoryChannelLayer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.pk), channel)
        relay = EventRelay(clock=clock)
        relay.cursor = first.pk - 1
        steps = [await relay.relay_once(layer)]
        clock.now += 1
        steps.append(await relay.relay_once(layer))
        clock.now += 1.5
        steps.append(await relay.relay_once(layer))
        return relay.cursor, steps, await drain(layer, channel)

    cursor, steps, ids = asyncio.run(scenario())
    assert steps == [1, 0, 1]
    assert ids == [first.pk, last.pk]
    assert cursor == last.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_run_one_relay_loop(settings):
    """Two clients connecting at once after a restart must not start two polling loops."""
    settings.EVENT_RELAY_INTERVAL = 0.01

    async def scenario():
        relay = EventRelay()
        await asyncio.gather(*(relay.ensure_started() for _ in range(5)))
        loops = [t for t in asyncio.all_tasks() if t.get_name() == "event-relay"]
        relay._task.cancel()
        return len(loops)

    assert asyncio.run(scenario()) == 1


@pytest.mark.django_db(transaction=True)
def test_each_message_names_the_previous_event_of_its_group(user, other_user):
    """`prev` lets a consumer notice a message the layer dropped (see EventsConsumer.job_event)."""
    alice_job, mallory_job = JobFactory(user=user), JobFactory(user=other_user)
    start = JobEventFactory(job=alice_job).pk
    a1, m1, a2 = (JobEventFactory(job=job) for job in (alice_job, mallory_job, alice_job))

    async def scenario():
        layer = InMemoryChannelLayer()
        alice, admin = await layer.new_channel(), await layer.new_channel()
        await layer.group_add(user_group(user.pk), alice)
        await layer.group_add(ADMIN_GROUP, admin)
        relay = EventRelay()
        relay.cursor = start
        await relay.relay_once(layer)
        pairs = {"alice": [], "admin": []}
        for name, channel, count in (("alice", alice, 2), ("admin", admin, 3)):
            for _ in range(count):
                message = await layer.receive(channel)
                pairs[name].append((message["id"], message["prev"]))
        return pairs

    pairs = asyncio.run(scenario())
    assert pairs["alice"] == [(a1.pk, 0), (a2.pk, a1.pk)]
    assert pairs["admin"] == [(a1.pk, 0), (m1.pk, a1.pk), (a2.pk, m1.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_starting_relay_does_not_skip_an_event_still_committing(user, settings):
    """On PostgreSQL, when a web process starts, an event with an id below the newest may not be committed yet:
    starting after MAX(id) would skip it for good (no later poll looks below the cursor). The relay starts
    after the newest *settled* event instead, and its hole logic covers the recent ones."""
    settings.EVENT_RELAY_GAP_GRACE = 2.0
    job = JobFactory(user=user)
    settled = JobEventFactory(job=job, created_at=timezone.now() - timedelta(seconds=60))
    committing, newest = JobEventFactory(job=job), JobEventFactory(job=job)
    row = JobEvent.objects.filter(pk=committing.pk).values().get()
    JobEvent.objects.filter(pk=committing.pk).delete()  # its transaction has not committed yet
    clock = FakeClock()

    async def scenario():
        layer = InMemoryChannelLayer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.pk), channel)
        relay = EventRelay(clock=clock)
        await relay.ensure_started()
        relay._task.cancel()  # this test polls by hand
        start = relay.cursor
        held = await relay.relay_once(layer)  # `newest` waits behind the hole
        await database_sync_to_async(JobEvent.objects.bulk_create)([JobEvent(**row)])  # ...which now commits
        clock.now += 0.5
        await relay.relay_once(layer)
        return start, held, await drain(layer, channel)

    start, held, ids = asyncio.run(scenario())
    assert start == settled.pk
    assert held == 0
    assert ids == [committing.pk, newest.pk]


@pytest.mark.django_db(transaction=True)
def test_a_starting_relay_without_holes_starts_after_the_newest_event(user, settings):
    """Nothing already written is handed on again when a web process starts (SQLite never has holes)."""
    settings.EVENT_RELAY_GAP_GRACE = 2.0
    job = JobFactory(user=user)
    JobEventFactory(job=job, created_at=timezone.now() - timedelta(seconds=60))
    newest = [JobEventFactory(job=job) for _ in range(3)][-1]

    async def scenario():
        relay = EventRelay()
        await relay.ensure_started()
        relay._task.cancel()
        return relay.cursor

    assert asyncio.run(scenario()) == newest.pk
