"""The preload queue (streaming/preload.py): POST /api/v1/ui/viewport validation and isolation, the queue's order
(focused > adjacent > visible > near, then newest), the MAX_PRELOAD_CONCURRENCY cap, cancel of what left the
screen or was pushed out, and the single loop. The engine's side of the `preload` op is exercised for real in
tests/e2e/test_preload.py; here a recording channel stands in for it so each answer ("3 pieces missing", "done")
is chosen by the test."""

from __future__ import annotations

import pytest
from django.utils import timezone

from downloads import leases
from downloads.models import PreloadItem, ProcessHeartbeat, Status
from streaming import preload
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/ui/viewport"
ENGINE = "host:1:engine"
State = PreloadItem.State


class Channel(preload.EngineChannel):
    """Answers what the test sets per job (missing head/tail pieces); records every request."""

    def __init__(self):
        self.missing: dict[int, int] = {}
        self.calls: list[tuple[str, int]] = []

    def ask(self, address, job_id, path, *, cancel=False):
        assert address == "127.0.0.1:5555"
        self.calls.append(("cancel" if cancel else "preload", job_id))
        return 0 if cancel else self.missing.get(job_id, 3)

    def take(self):
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def channel():
    ProcessHeartbeat.objects.create(kind=ProcessHeartbeat.Kind.ENGINE, name=ENGINE,
                                    info={"stream_address": "127.0.0.1:5555"})
    return Channel()


def running_job(user, name="Film", **fields):
    job = JobFactory(user=user, status=Status.DOWNLOADING, claimed_by=ENGINE, name=name, **fields)
    JobFileFactory(job=job, path=f"{name}/{name}.mp4", size_bytes=10_000_000, mime_type="video/mp4")
    return job


def post(client, *items):
    return client.post(URL, {"items": [{"job": j.pk if hasattr(j, "pk") else j, "priority": p} for j, p in items]},
                       format="json")


def states():
    return {row.job_id: (row.state, row.priority) for row in PreloadItem.objects.all()}


class TestViewportApi:
    @pytest.mark.parametrize("body", [
        {}, {"items": "x"}, {"items": [{"job": 1}]}, {"items": [{"job": 1, "priority": "urgent"}]},
        {"items": [{"job": "a", "priority": "near"}]}, {"items": [{"job": 2**64, "priority": "near"}]},
        {"items": [{"job": 1, "priority": "near"}] * (preload.MAX_ITEMS + 1)},
    ])
    def test_bad_input_is_400_with_code_and_detail(self, api_client, body):
        response = api_client.post(URL, body, format="json")
        assert response.status_code == 400 and response.json()["code"] == "invalid" and response.json()["detail"]
        assert not PreloadItem.objects.exists()

    def test_anonymous_is_refused(self, client):
        response = client.post(URL, {"items": []}, content_type="application/json")
        assert response.status_code in (401, 403) and response.json()["code"]

    def test_only_the_users_running_engine_jobs_are_queued(self, api_client, user, other_user, channel):
        mine = running_job(user)
        theirs = running_job(other_user)
        done = JobFactory(user=user, status=Status.COMPLETED)
        seedr = JobFactory(user=user, backend="seedr", status=Status.DOWNLOADING)
        response = post(api_client, (mine, "focused"), (theirs, "adjacent"), (done, "visible"), (seedr, "near"),
                        (999_999, "near"))
        assert response.status_code == 200 and response.json() == {"queued": [mine.pk]}
        assert states() == {mine.pk: (State.WANTED, 4)}

    def test_a_later_post_replaces_the_set(self, api_client, user, channel):
        a, b, c = (running_job(user, n) for n in "abc")
        post(api_client, (a, "focused"), (b, "near"))
        preload.pass_once(channel)  # both asked of the engine
        assert channel.take() == [("preload", a.pk), ("preload", b.pk)]
        post(api_client, (b, "focused"), (c, "visible"))
        assert states() == {a.pk: (State.CANCELLED, 4), b.pk: (State.RUNNING, 4), c.pk: (State.WANTED, 2)}
        preload.pass_once(channel)
        assert channel.take() == [("cancel", a.pk), ("preload", b.pk), ("preload", c.pk)]
        assert set(states()) == {b.pk, c.pk}, "the cancelled row is gone once the engine was told"

    def test_an_item_never_asked_of_an_engine_simply_goes(self, api_client, user, channel):
        a = running_job(user)
        post(api_client, (a, "near"))
        post(api_client)
        assert not PreloadItem.objects.exists()
        preload.pass_once(channel)
        assert channel.take() == []

    def test_the_worker_is_kicked_unless_a_loop_runs(self, api_client, user, channel, monkeypatch,
                                                    django_capture_on_commit_callbacks):
        kicked = []
        monkeypatch.setattr(preload, "enqueue", lambda task, **kw: kicked.append(task))
        with django_capture_on_commit_callbacks(execute=True):
            post(api_client, (running_job(user), "near"))
        assert kicked == ["streaming.tasks.preload"]
        assert leases.claim(preload.LEASE, leases.new_holder(), 30)  # a loop is running: it will see the change
        with django_capture_on_commit_callbacks(execute=True):
            post(api_client)
        assert kicked == ["streaming.tasks.preload"]


class TestQueue:
    def test_highest_priority_first_at_most_the_cap(self, api_client, user, channel, settings):
        settings.MAX_PRELOAD_CONCURRENCY = 2
        near, visible, focused, adjacent = (running_job(user, n) for n in ("near", "visible", "focused", "adj"))
        post(api_client, (near, "near"), (visible, "visible"), (focused, "focused"), (adjacent, "adjacent"))
        assert preload.pass_once(channel) is True
        assert channel.take() == [("preload", focused.pk), ("preload", adjacent.pk)]
        channel.missing[focused.pk] = 0  # its head and tail are on disk: the slot goes to the next
        preload.pass_once(channel)
        assert channel.take() == [("preload", focused.pk), ("preload", adjacent.pk)]
        assert states()[focused.pk][0] == State.DONE
        preload.pass_once(channel)
        assert channel.take() == [("preload", adjacent.pk), ("preload", visible.pk)]
        assert sum(s == State.RUNNING for s, _ in states().values()) <= 2

    def test_newest_viewport_first_among_equals(self, api_client, other_client, user, other_user, channel, settings):
        settings.MAX_PRELOAD_CONCURRENCY = 1
        older = running_job(other_user, "older")
        newer = running_job(user, "newer")
        post(other_client, (older, "visible"))
        post(api_client, (newer, "visible"))
        preload.pass_once(channel)
        assert channel.take() == [("preload", newer.pk)]

    def test_pushed_out_of_the_top_is_cancelled_and_waits(self, api_client, user, channel, settings):
        settings.MAX_PRELOAD_CONCURRENCY = 1
        a, b = running_job(user, "a"), running_job(user, "b")
        post(api_client, (a, "focused"), (b, "near"))
        preload.pass_once(channel)
        assert channel.take() == [("preload", a.pk)]
        post(api_client, (a, "near"), (b, "focused"))
        preload.pass_once(channel)
        assert channel.take() == [("cancel", a.pk), ("preload", b.pk)]
        assert states() == {a.pk: (State.WANTED, 1), b.pk: (State.RUNNING, 4)}

    def test_no_metadata_or_no_engine_yet_waits_without_asking(self, api_client, user, channel):
        unclaimed = JobFactory(user=user, status=Status.QUEUED, claimed_by="")
        JobFileFactory(job=unclaimed, path="x.mp4", mime_type="video/mp4")
        nometa = JobFactory(user=user, status=Status.FETCHING_METADATA, claimed_by=ENGINE)
        post(api_client, (unclaimed, "focused"), (nometa, "focused"))
        assert preload.pass_once(channel) is True and channel.take() == []

    def test_a_job_that_finished_meanwhile_is_done(self, api_client, user, channel):
        job = running_job(user)
        post(api_client, (job, "focused"))
        job.status = Status.COMPLETED
        job.save()
        assert preload.pass_once(channel) is False
        assert states() == {job.pk: (State.DONE, 4)} and channel.take() == []

    def test_an_unreachable_engine_leaves_the_item_waiting(self, api_client, user, settings):
        ProcessHeartbeat.objects.create(kind=ProcessHeartbeat.Kind.ENGINE, name=ENGINE,
                                        info={"stream_address": "127.0.0.1:9"})  # nothing listens on port 9
        job = running_job(user)
        post(api_client, (job, "focused"))
        assert preload.pass_once(preload.EngineChannel()) is True
        assert states() == {job.pk: (State.WANTED, 4)}


class TestLoop:
    def test_one_loop_at_a_time(self, channel):
        holder = leases.new_holder()
        assert leases.claim(preload.LEASE, holder, 30)
        assert preload.run(channel) == 0

    def test_runs_until_everything_is_done(self, api_client, user, channel, monkeypatch):
        job = running_job(user)
        post(api_client, (job, "focused"))
        answers = iter([2, 1, 0])
        monkeypatch.setattr(channel, "ask", lambda *a, cancel=False: next(answers))
        monkeypatch.setattr(preload, "PASS_INTERVAL", 0)
        assert preload.run(channel, seconds=30) == 3
        assert states() == {job.pk: (State.DONE, 4)}
        assert not leases.is_held(preload.LEASE)

    def test_scheduled_every_minute(self):
        from downloads.schedules import SCHEDULES

        assert SCHEDULES["flotilla.preload"] == ("streaming.tasks.preload", "seconds")


def test_stale_rows_of_a_finished_pass_keep_the_newer_viewport(api_client, user, channel):
    """A POST between a pass's read and its write wins: the pass writes only rows still in the state it saw."""
    job = running_job(user)
    post(api_client, (job, "focused"))
    item = PreloadItem.objects.get()
    PreloadItem.objects.filter(pk=item.pk).update(state=State.CANCELLED, updated_at=timezone.now())
    preload._save(item, state=State.RUNNING)
    assert PreloadItem.objects.get().state == State.CANCELLED
