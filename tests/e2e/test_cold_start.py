"""A cold start, end to end (issue 13): daphne and `manage.py runengine` as separate processes, a loopback tracker
and a 1 MiB/s seeder. A player's first frame of an MP4 with `moov` at the end needs the head, the tail and the
head again; the engine fetches head and tail together as soon as it knows the file:
- for a magnet posted to "play without downloading", before anything reads the stream;
- for a stream reader, and past its request: head and tail keep their deadlines when the player closes one
  request to open the next (as ffmpeg and browsers do)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from downloads.engine.streams import HEAD_TAIL_BYTES
from downloads.models import Job
from downloads.swarm import make_torrent, torrent_meta
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.e2e.conftest import _print_logs as print_logs
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_e2e_cold_start_" + "c" * 30
PIECE = 64 * 1024
SIZE = 16 * 1024 * 1024 + 12_345  # 257 pieces; head + tail are 2 MiB of it
RATE = 1024 * 1024  # the whole file takes ~16 s


@pytest.fixture
def env(tmp_path):
    try:
        yield procs.process_env(tmp_path, **procs.ENGINE_ENV)
    finally:
        print_logs(tmp_path)


def pieces_on_disk(path: Path, data: bytes) -> tuple[bool, int]:
    """Whether the file's head and tail MiB equal the source, and how many of its pieces do."""
    try:
        with open(path, "rb") as fh:
            on_disk = fh.read()
    except OSError:
        return False, 0
    head_tail = (on_disk[:HEAD_TAIL_BYTES] == data[:HEAD_TAIL_BYTES]
                 and on_disk[SIZE - HEAD_TAIL_BYTES:SIZE] == data[-HEAD_TAIL_BYTES:])
    same = sum(on_disk[i:i + PIECE] == data[i:i + PIECE] for i in range(0, SIZE, PIECE))
    return head_tail, same


def seeded(tmp_path, tracker, seeder, name):
    data = os.urandom(SIZE)
    folder = tmp_path / f"seed-{name}"
    folder.mkdir()
    (folder / name).write_bytes(data)
    torrent = make_torrent(folder / name, [tracker.announce_url], PIECE)
    seeder.add(torrent, folder, upload_limit=RATE)
    return data, torrent


def test_a_played_magnet_fetches_head_and_tail_before_any_read(user, env, tmp_path, tracker, seeder):
    ApiKeyFactory(user=user, raw=KEY)
    PlanAssignmentFactory(user=user, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0))
    data, torrent = seeded(tmp_path, tracker, seeder, "film.mp4")
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), \
            httpx.Client(base_url=base_url, headers={"Authorization": f"Token {KEY}"}, timeout=30) as client:
        response = client.post("/api/v1/stream/play/", json={"magnet": torrent_meta(torrent).magnet})
        assert response.status_code == 201, response.text
        job = Job.objects.get(pk=response.json()["job"]["id"])
        path = job.data_dir / "film.mp4"
        state = wait_for(lambda: (s := pieces_on_disk(path, data))[0] and s, "head and tail on disk, unread", 60)
        total = -(-SIZE // PIECE)
        print(f"\nplayed magnet: head and tail on disk with {state[1]} of {total} pieces")
        assert state[1] < total // 2, f"head and tail came first, not with the whole file ({state[1]} of {total})"
        # The player now finds both ends verified: its first two reads need no further round.
        for range_, expected in (("bytes=0-65535", data[:65536]), (f"bytes=-{PIECE}", data[-PIECE:])):
            reply = client.get(f"/api/v1/stream/{job.pk}", headers={"Range": range_})
            assert reply.status_code == 206 and reply.content == expected


def test_head_and_tail_keep_their_deadlines_after_the_first_request(user, env, tmp_path, tracker, seeder):
    ApiKeyFactory(user=user, raw=KEY)
    PlanAssignmentFactory(user=user, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0))
    data, torrent = seeded(tmp_path, tracker, seeder, "film.mkv")
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), \
            httpx.Client(base_url=base_url, headers={"Authorization": f"Token {KEY}"}, timeout=30) as client:
        response = client.post("/api/v1/jobs/", files={"torrent": ("t.torrent", torrent)})
        assert response.status_code == 201, response.text
        job = Job.objects.get(pk=response.json()["id"])
        # Asked at once: the view waits for the engine to take the job up (no 503), then for the first piece.
        reply = client.get(f"/api/v1/stream/{job.pk}", headers={"Range": "bytes=0-65535"})
        assert reply.status_code == 206 and reply.content == data[:65536]
        # The request is over, no reader is open: the tail still comes before most of the file.
        path = job.data_dir / "film.mkv"
        state = wait_for(lambda: (s := pieces_on_disk(path, data))[0] and s, "head and tail on disk", 60)
        total = -(-SIZE // PIECE)
        print(f"\nafter one request: head and tail on disk with {state[1]} of {total} pieces")
        assert state[1] < total // 2, f"head and tail came first, not with the whole file ({state[1]} of {total})"
