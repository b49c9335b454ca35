"""A cold stream (issue 13): before the engine has taken a job up, or learnt a magnet's files, the stream view
waits for it (async, within STREAM_TIMEOUT) instead of answering 503 + Retry-After at once; a 503 stays for real
unavailability (no engine at all). The real engine and swarm: tests/e2e/test_streaming.py."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from downloads.models import ProcessHeartbeat, Status
from streaming import stream
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db

DATA = os.urandom(300_000)
KEY = "flt_stream_" + "c" * 38


@pytest.fixture
def key(user):
    ApiKeyFactory(user=user, raw=KEY)
    return {"Authorization": f"Token {KEY}"}


def live_engine(name="engine-a"):
    # An engine's beat with a stream channel: the view may expect it to claim a queued job.
    ProcessHeartbeat.objects.create(kind=ProcessHeartbeat.Kind.ENGINE, name=name,
                                    info={"stream_address": "127.0.0.1:9"})


def queued_job(user, *, with_file=True):
    job = JobFactory(user=user, status=Status.QUEUED, backend="engine", name="Cold")
    if with_file:
        JobFileFactory(job=job, path="cold.mp4", size_bytes=len(DATA), completed_bytes=0, mime_type="video/mp4")
    return job


def finish_on_disk(job_id):
    """What the engine's work ends in: the file complete on disk, the job completed."""
    job = stream.Job.objects.get(pk=job_id)
    path = job.data_dir / "cold.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DATA)
    if not job.files.exists():
        JobFileFactory(job=job, path="cold.mp4", size_bytes=len(DATA), completed_bytes=0, mime_type="video/mp4")
    job.files.update(completed_bytes=len(DATA))
    stream.Job.objects.filter(pk=job_id).update(status=Status.COMPLETED)


def play_while(job, headers, monkeypatch, then=None):
    """GET the job's stream; right after the view's second look at the job (so it waited rather than answered),
    run `then` (as the engine's write would land, on the thread the view reads the database from).
    The response, its body, the seconds; and the view's looks."""
    calls = []
    original = stream.resolve

    def counting(*args, **kwargs):
        calls.append(1)
        try:
            return original(*args, **kwargs)
        finally:
            if len(calls) == 2 and then is not None:
                then(job.pk)

    monkeypatch.setattr(stream, "resolve", counting)

    async def run():
        began = time.monotonic()
        response = await AsyncClient().get(reverse("stream-job", args=[job.pk]), headers=headers)
        data = b"".join([c async for c in response.streaming_content]) if response.streaming else response.content
        return response, data, time.monotonic() - began

    return async_to_sync(run)(), calls


def test_queued_job_waits_for_the_engine_then_plays(user, key, settings, monkeypatch):
    settings.STREAM_TIMEOUT = 20.0
    live_engine()
    job = queued_job(user)
    (response, data, _), calls = play_while(job, key, monkeypatch, then=finish_on_disk)
    assert response.status_code == 200 and data == DATA
    assert len(calls) >= 3  # answered only after the job moved


def test_magnet_without_files_waits_for_the_metadata(user, key, settings, monkeypatch):
    settings.STREAM_TIMEOUT = 20.0
    live_engine()
    job = queued_job(user, with_file=False)
    stream.Job.objects.filter(pk=job.pk).update(status=Status.FETCHING_METADATA, claimed_by="engine-a")
    (response, data, _), _ = play_while(job, key, monkeypatch, then=finish_on_disk)
    assert response.status_code == 200 and data == DATA


def test_the_wait_is_bounded_by_stream_timeout(user, key, settings, monkeypatch):
    settings.STREAM_TIMEOUT = 0.6
    live_engine()
    job = queued_job(user)
    (response, _, elapsed), calls = play_while(job, key, monkeypatch)
    assert response.status_code == 503 and response.json()["code"] == "engine_unavailable"
    assert response["Retry-After"] == str(settings.STREAM_RETRY_AFTER)
    assert 0.4 <= elapsed < 5 and len(calls) >= 2


def test_without_any_engine_a_queued_job_is_503_at_once(user, key, settings, monkeypatch):
    settings.STREAM_TIMEOUT = 30.0
    job = queued_job(user)
    (response, _, elapsed), calls = play_while(job, key, monkeypatch)
    assert response.status_code == 503 and response.json()["code"] == "engine_unavailable"
    assert len(calls) == 1 and elapsed < 10


def test_a_stale_engine_heartbeat_is_no_engine(user, key, settings, monkeypatch):
    settings.STREAM_TIMEOUT = 30.0
    live_engine()
    stale = timezone.now() - dt.timedelta(seconds=settings.ENGINE_HEARTBEAT_TIMEOUT + 5)
    ProcessHeartbeat.objects.update(last_seen=stale)
    job = queued_job(user)
    (response, _, _), calls = play_while(job, key, monkeypatch)
    assert response.status_code == 503 and len(calls) == 1


def test_a_magnet_of_a_paused_job_is_not_waited_for(user, key, settings, monkeypatch):
    settings.STREAM_TIMEOUT = 30.0
    live_engine()
    job = queued_job(user, with_file=False)
    stream.Job.objects.filter(pk=job.pk).update(status=Status.PAUSED, claimed_by="engine-a")
    (response, _, _), calls = play_while(job, key, monkeypatch)
    assert response.status_code == 404 and len(calls) == 1
