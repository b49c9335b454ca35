"""The engine's stream channel (downloads/engine/streams.py) against a real in-process engine and swarm: a torrent
that leaves the session mid-request is `not_here`, never an engine error, and a `read` answers within its wait."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import pytest

from downloads import services
from downloads.engine.streams import channel_key
from downloads.models import Job, Status
from tests.downloads.engine.conftest import run_until

pytestmark = pytest.mark.django_db


class LookedBeforeTheRemoval:
    """A real handle, as seen by a stream thread that checked `is_valid()` just before the engine's thread took the
    torrent out of the session: that first look says valid, every later call meets the removed torrent."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self._looked = False

    def is_valid(self) -> bool:
        if not self._looked:
            self._looked = True
            return True
        return self._handle.is_valid()

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


class Channel:
    """The web's side of the channel, by hand: JSON lines over one connection."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.lines = self.sock.makefile("rwb")

    def ask(self, request: dict) -> dict:
        self.lines.write(json.dumps(request).encode() + b"\n")
        self.lines.flush()
        return json.loads(self.lines.readline())

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


@pytest.fixture
def seeding_job(engine, local_swarm, user):
    """A job the engine holds with every piece on disk (the default plan keeps it seeding)."""
    record = local_swarm.publish("clip.bin", 700_000)
    job = services.add_torrent(user, record.torrent_bytes)
    run_until(engine, lambda: Job.objects.get(pk=job.pk).status == Status.SEEDING and job.pk in engine.torrents,
              what="seeding")
    return job, job.files.get().path


def test_a_torrent_leaving_the_session_between_the_look_and_the_call_is_not_here(engine, seeding_job):
    job, path = seeding_job
    torrent = engine.torrents[job.pk]
    opened = {"op": "open", "key": channel_key(), "job": job.pk, "path": path}
    reading = Channel(engine.streams.address)
    assert reading.ask(opened)["ok"] and reading.ask({"op": "read", "offset": 0, "wait": 2})["available"] > 0

    # What the engine's thread does when the job completes: the torrent leaves the session, and libtorrent
    # invalidates the handle a moment later, after the stream thread's look.
    engine.session.remove_torrent(torrent.handle)
    deadline = time.monotonic() + 10
    while torrent.handle.is_valid():
        assert time.monotonic() < deadline, "libtorrent kept the removed torrent's handle valid"
        engine.session.wait_for_alert(50)
    real = torrent.handle
    try:
        torrent.handle = LookedBeforeTheRemoval(real)
        assert reading.ask({"op": "read", "offset": 300_000, "wait": 2}) == {"ok": False, "code": "not_here"}
        torrent.handle = LookedBeforeTheRemoval(real)
        opening = Channel(engine.streams.address)
        assert opening.ask(opened) == {"ok": False, "code": "not_here"}
        opening.close()
    finally:
        reading.close()
        engine.torrents.pop(job.pk)  # as the engine's own removal does (shutdown would touch the handle again)


def test_a_read_answers_within_its_wait_while_another_reader_holds_the_lock(engine, seeding_job):
    job, path = seeding_job
    streams = engine.streams.streams
    reader_id, _ = streams.open(job.pk, path)
    with concurrent.futures.ThreadPoolExecutor(1) as pool, streams._lock:  # say, a slow window change
        began = time.monotonic()
        answer = pool.submit(streams.available, job.pk, reader_id, 400_000, 0.5).result(timeout=10)
        took = time.monotonic() - began
    assert answer == 0 and 0.4 <= took < 3, took  # "not within the wait", the same as a late piece
    assert streams.available(job.pk, reader_id, 400_000, 2) == 700_000 - 400_000
    streams.close(job.pk, reader_id)
