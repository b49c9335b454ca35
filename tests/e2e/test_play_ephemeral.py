"""Play without downloading, end to end: daphne and `manage.py runengine` as separate processes, a loopback
tracker and a rate-limited seeder. A magnet posted to /api/v1/stream/play/ becomes an ephemeral job; the engine
gets its metadata from the swarm, the stream serves the source's bytes, the read is recorded; once idle past
STREAM_IDLE_MINUTES (the clock passed in, not slept) the job is removed with its data and the engine lets the
torrent go, so nothing writes the folder again."""

from __future__ import annotations

import datetime as dt
import os
import time

import httpx
import pytest
from django.utils import timezone

from downloads.models import Job, ProcessHeartbeat
from downloads.swarm import make_torrent, torrent_meta
from streaming import ephemeral
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_e2e_play_eph_" + "e" * 32
SIZE = 6 * 1024 * 1024 + 777
RATE = 1024 * 1024


def engine_torrents() -> int:
    info = ProcessHeartbeat.objects.filter(kind=ProcessHeartbeat.Kind.ENGINE).values_list("info", flat=True).first()
    return (info or {}).get("torrents", -1)


def test_a_magnet_plays_at_once_and_is_removed_with_its_data_when_idle(user, env, tmp_path, tracker, seeder,
                                                                        settings):
    ApiKeyFactory(user=user, raw=KEY)
    PlanAssignmentFactory(user=user, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0))
    data = os.urandom(SIZE)
    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(data)
    torrent = make_torrent(folder / "clip.mp4", [tracker.announce_url], 64 * 1024)
    seeder.add(torrent, folder, upload_limit=RATE)
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), \
            httpx.Client(base_url=base_url, headers={"Authorization": f"Token {KEY}"}, timeout=30) as client:
        began = time.monotonic()
        response = client.post("/api/v1/stream/play/", json={"magnet": torrent_meta(torrent).magnet})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["ephemeral"] is True and body["ready"] is False  # a magnet: the swarm names the files
        links = wait_for(lambda: (r := client.get(body["status_url"]).json())["ready"] and r,
                         "the engine got the metadata from the swarm", 60)
        job = Job.objects.get(pk=body["job"]["id"])
        assert job.ephemeral and job.last_read_at is None

        reply = client.get(links["stream_url"], headers={"Range": "bytes=0-199999"})
        first_bytes = time.monotonic() - began
        assert reply.status_code == 206 and reply.content == data[:200_000]
        tail = client.get(links["stream_url"], headers={"Range": "bytes=-100000"})
        assert tail.status_code == 206 and tail.content == data[-100_000:]
        print(f"\nplay without downloading: magnet posted → first 200 kB streamed in {first_bytes:.2f} s")
        job.refresh_from_db()
        assert job.last_read_at is not None
        assert job.data_dir.exists()

        assert ephemeral.remove_idle(job.last_read_at + dt.timedelta(minutes=settings.STREAM_IDLE_MINUTES - 1)) == 0
        assert ephemeral.remove_idle(timezone.now() + dt.timedelta(minutes=settings.STREAM_IDLE_MINUTES + 1)) == 1
        assert not Job.objects.filter(pk=job.pk).exists() and not job.data_dir.exists()
        wait_for(lambda: engine_torrents() == 0, "the engine let the torrent go", 30)
        assert not job.data_dir.exists(), "nothing wrote the removed job's folder again"
        assert client.get(links["stream_url"]).status_code == 404
