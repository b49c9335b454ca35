"""A cold start, end to end (issue 13): daphne and `manage.py runengine` as separate processes, a loopback tracker
and a 1 MiB/s seeder. A player's first frame of an MP4 with `moov` at the end needs the head, the tail and the
head again; the engine fetches head and tail together as soon as it knows the file:
- for a magnet posted to "play without downloading", before anything reads the stream;
- for a stream reader, and past its request: head and tail keep their deadlines when the player closes one
  request to open the next (as ffmpeg and browsers do).
The 1 MiB/s seeder joins only once the moment under test has passed (the engine knows the file; the first
request is over); before, a peer holding no piece or only the first one is all there is. So the count of
pieces on disk when both ends are there measures the engine's order, not how long a loaded machine took to
get to that moment (CI: 131 of 257 pieces had come while the first request was still being answered)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloads.engine.streams import HEAD_TAIL_BYTES
from downloads.models import Job, Status
from downloads.swarm import make_torrent, torrent_meta
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_e2e_cold_start_" + "c" * 30
PIECE = 64 * 1024
SIZE = 16 * 1024 * 1024 + 12_345  # 257 pieces; head + tail are 2 MiB of it
RATE = 1024 * 1024  # the whole file takes ~16 s


def pieces_on_disk(path: Path, data: bytes) -> tuple[bool, int]:
    """Whether the file's head and tail MiB equal the source and, once they do, how many of its pieces do.
    Polled: only the two ends are read until they are there, so the observer does not slow the download."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_TAIL_BYTES)
            fh.seek(SIZE - HEAD_TAIL_BYTES)
            if head != data[:HEAD_TAIL_BYTES] or fh.read(HEAD_TAIL_BYTES) != data[-HEAD_TAIL_BYTES:]:
                return False, 0
            fh.seek(0)
            on_disk = fh.read()
    except OSError:
        return False, 0
    return True, sum(on_disk[i:i + PIECE] == data[i:i + PIECE] for i in range(0, SIZE, PIECE))


def source(tmp_path, tracker, name) -> tuple[bytes, bytes, Path]:
    """The file, its .torrent and the folder a seeder serves it from; nobody seeds it yet."""
    data = os.urandom(SIZE)
    folder = tmp_path / f"seed-{name}"
    folder.mkdir()
    (folder / name).write_bytes(data)
    return data, make_torrent(folder / name, [tracker.announce_url], PIECE), folder


@contextlib.contextmanager
def web_and_engine(user, env, tmp_path) -> Iterator[httpx.Client]:
    """daphne and the engine as processes; an API client of `user`, whose plan asks for no seeding."""
    ApiKeyFactory(user=user, raw=KEY)
    PlanAssignmentFactory(user=user, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0))
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), \
            httpx.Client(base_url=base_url, headers={"Authorization": f"Token {KEY}"}, timeout=30) as client:
        yield client


def test_a_played_magnet_fetches_head_and_tail_before_any_read(user, env, tmp_path, tracker, seeder, leecher):
    data, torrent, folder = source(tmp_path, tracker, "film.mp4")
    # The only peer at first holds no piece: the engine gets the metadata from it, and nothing else.
    leecher.offer_part(torrent, data, tmp_path / "empty", "film.mp4", PIECE, [])
    with web_and_engine(user, env, tmp_path) as client:
        response = client.post("/api/v1/stream/play/", json={"magnet": torrent_meta(torrent).magnet})
        assert response.status_code == 201, response.text
        job = Job.objects.get(pk=response.json()["job"]["id"])
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.DOWNLOADING, "the metadata", 60)
        leecher.close()
        # Pieces enter the swarm only now, after the engine knew the file and before anything reads it.
        seeder.add(torrent, folder, upload_limit=RATE)
        assert_head_and_tail_came_first(job.data_dir / "film.mp4", data, "played magnet")
        # The player now finds both ends verified: its first two reads need no further round.
        for range_, expected in (("bytes=0-65535", data[:65536]), (f"bytes=-{PIECE}", data[-PIECE:])):
            reply = client.get(f"/api/v1/stream/{job.pk}", headers={"Range": range_})
            assert reply.status_code == 206 and reply.content == expected


def test_head_and_tail_keep_their_deadlines_after_the_first_request(user, env, tmp_path, tracker, seeder, leecher):
    data, torrent, folder = source(tmp_path, tracker, "film.mkv")
    # The only peer at first holds the first piece alone: what the first request reads, and nothing else.
    leecher.offer_part(torrent, data, tmp_path / "first-piece", "film.mkv", PIECE, [0])
    with web_and_engine(user, env, tmp_path) as client:
        response = client.post("/api/v1/jobs/", files={"torrent": ("t.torrent", torrent)})
        assert response.status_code == 201, response.text
        job = Job.objects.get(pk=response.json()["id"])
        # Asked at once: the view waits for the engine to take the job up (no 503), then for the first piece.
        reply = client.get(f"/api/v1/stream/{job.pk}", headers={"Range": "bytes=0-65535"})
        assert reply.status_code == 206 and reply.content == data[:65536]
        leecher.close()
        # The request is over, no reader is open; the rest of the file enters the swarm only now.
        seeder.add(torrent, folder, upload_limit=RATE)
        assert_head_and_tail_came_first(job.data_dir / "film.mkv", data, "after one request")


def assert_head_and_tail_came_first(path: Path, data: bytes, case: str) -> None:
    """Head and tail on disk before most of the file: in libtorrent's own order (rarest first, random among
    equals) the 32 pieces of both ends would all be there only with nearly all 257."""
    state = wait_for(lambda: (s := pieces_on_disk(path, data))[0] and s, "head and tail on disk", 60)
    total = -(-SIZE // PIECE)
    print(f"\n{case}: head and tail on disk with {state[1]} of {total} pieces")
    assert state[1] < total // 2, f"head and tail came first, not with the whole file ({state[1]} of {total})"
