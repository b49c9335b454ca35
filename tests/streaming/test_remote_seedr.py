"""Playing a Seedr job's file while it is still on Seedr (finished there, being brought home): the stream proxies
Range to a fresh Seedr file link server-side (the live fake Seedr, tests/fakes/seedr_fake.py), and a completed
Seedr job is served from disk."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import tracemalloc

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.urls import reverse

from downloads import dispatch
from downloads.backends import RemoteLink
from downloads.models import Status
from seedr import backend as seedr_backend
from seedr import services
from seedr.backend import SeedrBackend
from seedr.models import SeedrAccount
from streaming import stream
from tests.downloads.runs import run_bring_home
from tests.fakes.seedr_fake import file_bytes
from tests.seedr import conftest as seedr_fixtures
from tests.seedr.conftest import drive, info_hash, magnet, refreshed

# The live fake Seedr and a connected user, as the Seedr tests have them.
fake, connected, plan = seedr_fixtures.fake, seedr_fixtures.connected, seedr_fixtures.plan

pytestmark = pytest.mark.django_db

SIZE = 3_000_000
PATH = "Film/film.mp4"


@pytest.fixture(autouse=True)
def _fresh_listings():
    seedr_backend._listings.clear()  # job and Seedr folder ids repeat from test to test


@pytest.fixture
def on_seedr(fake, user, connected):
    """A job whose torrent finished on Seedr and whose transfer home was cut (it waits for its retry): its file
    is registered, a part of it is on the local disk, and all of it is on Seedr."""
    fake.define(info_hash(41), "Film", [(PATH, SIZE)])
    job = services.add(user, magnet=magnet(41, "Film"))
    drive()
    for _ in range(4):
        fake.cut_next_download(100_000)
    dispatch.sync_running()
    run_bring_home(job.pk)
    job = refreshed(job)
    assert (job.status, job.seedr.phase) == (Status.TRANSFERRING, "transfer"), job.reason
    jobfile = job.files.get()
    assert (jobfile.path, jobfile.size_bytes, jobfile.completed_bytes) == (PATH, SIZE, 0)
    return job, jobfile


def get(url, method="get", **headers):
    async def fetch():
        response = await getattr(AsyncClient(), method)(url, headers=headers)
        data = b"".join([c async for c in response.streaming_content]) if response.streaming else response.content
        return response, data

    return async_to_sync(fetch)()


def link(user, jobfile) -> str:
    return stream.stream_url(user.pk, jobfile)


def _secret_free(response, data: bytes, seedr) -> None:
    """Nothing of Seedr's link or token reaches the browser."""
    shown = " ".join(f"{k}: {v}" for k, v in response.items()) + (data[:2000].decode("latin-1"))
    token = SeedrAccount.objects.get().token
    assert "ff_get" not in shown and "st=" not in shown and seedr.base_url not in shown
    assert token[:20] not in shown


def test_a_file_on_seedr_plays_with_range_through_a_fresh_link(fake, user, on_seedr):
    _, jobfile = on_seedr
    source = file_bytes(info_hash(41), PATH, SIZE)
    links_before = fake.calls("fetch_file")

    response, data = get(link(user, jobfile), Range="bytes=1048580-2000000")
    assert response.status_code == 206
    assert data == source[1048580:2000001]
    assert response["Content-Range"] == f"bytes 1048580-2000000/{SIZE}"
    assert "Content-Length" not in response  # chunked: a stalled upstream's early end is seen at once
    assert response["Content-Type"] == "video/mp4" and response["Content-Disposition"].startswith("inline;")
    assert response["X-Stream-Source"] == "link"
    _secret_free(response, data, fake)
    # Seedr's file server was asked for exactly that range, through a link fetched for this request.
    assert [r["range"] for r in fake.requests if r["func"] == "ff_get"][-1] == "bytes=1048580-2000000"
    assert fake.calls("fetch_file") == links_before + 1

    response, data = get(link(user, jobfile))
    assert response.status_code == 200 and data == source
    response, data = get(link(user, jobfile), Range="bytes=-1000")
    assert response.status_code == 206 and data == source[-1000:]
    assert response["Content-Range"] == f"bytes {SIZE - 1000}-{SIZE - 1}/{SIZE}"
    assert fake.calls("fetch_file") == links_before + 3  # a fresh link for every playback request

    head, body = get(link(user, jobfile), method="head", Range="bytes=10-19")
    assert head.status_code == 206 and head["Content-Length"] == "10" and body == b""


def test_ranges_outside_the_file_are_416_and_the_upstreams_416_is_passed_through(fake, user, on_seedr):
    _, jobfile = on_seedr
    response, _ = get(link(user, jobfile), Range=f"bytes={SIZE}-")
    assert response.status_code == 416 and response.json()["code"] == "range_not_satisfiable"
    assert response["Content-Range"] == f"bytes */{SIZE}"
    fake.fail_next("ff_get", 416, {"status_code": 416, "reason_phrase": "range_not_satisfiable"})
    response, _ = get(link(user, jobfile), Range="bytes=0-99")
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{SIZE}"
    for hostile in ("bytes=abc", "bytes=5-1", "items=0-1", "bytes=" + "9" * 400 + "-"):
        response, _ = get(link(user, jobfile), Range=hostile)
        assert response.status_code in (200, 206, 416), hostile  # never a 5xx from what the client sends


@pytest.mark.parametrize(("status", "headers", "answer", "code"), [
    (403, {}, 502, "upstream_refused"), (404, {}, 502, "upstream_refused"), (500, {}, 502, "upstream_failed"),
    (429, {}, 503, "upstream_busy"), (404, {"Retry-After": "5"}, 503, "upstream_busy"),
])
def test_upstream_refusals_are_502_or_503_with_a_code(fake, user, on_seedr, status, headers, answer, code,
                                                      settings):
    _, jobfile = on_seedr
    fake.fail_next("ff_get", status, {"status_code": status, "reason_phrase": "nope"}, headers=headers)
    response, _ = get(link(user, jobfile), Range="bytes=0-99")
    assert response.status_code == answer and response.json()["code"] == code
    if answer == 503:
        assert response["Retry-After"] == str(settings.STREAM_RETRY_AFTER)
    assert stream.active_streams(user.pk) == 0  # the slot was given back


def test_seedr_api_trouble_is_a_502_with_its_code(fake, user, on_seedr):
    _, jobfile = on_seedr
    fake.fail_next("fetch_file", 500, {"error": "boom"})
    response, _ = get(link(user, jobfile), Range="bytes=0-99")
    assert response.status_code == 502 and set(response.json()) == {"code", "detail"}


def test_an_upstream_that_never_answers_is_408(fake, user, on_seedr, settings, monkeypatch):
    _, jobfile = on_seedr
    settings.STREAM_TIMEOUT = 1
    silent = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    monkeypatch.setattr(SeedrBackend, "stream_source",
                        lambda self, job, f: RemoteLink(f"http://127.0.0.1:{silent.getsockname()[1]}/ff_get/x"))
    began = time.monotonic()
    try:
        response, _ = get(link(user, jobfile), Range="bytes=0-99")
    finally:
        silent.close()
    assert response.status_code == 408 and response.json()["code"] == "stream_timeout"
    assert time.monotonic() - began < 10 and accepted
    assert stream.active_streams(user.pk) == 0


def test_an_upstream_stalling_mid_body_ends_the_body_cleanly(fake, user, on_seedr, settings):
    _, jobfile = on_seedr
    settings.STREAM_TIMEOUT = 1
    fake.hold_next_download(400_000)
    try:
        response, data = get(link(user, jobfile), Range="bytes=0-")
    finally:
        fake.release_downloads()
    assert response.status_code == 206 and response["Content-Range"] == f"bytes 0-{SIZE - 1}/{SIZE}"
    assert len(data) == 400_000, len(data)
    assert data == file_bytes(info_hash(41), PATH, SIZE)[:400_000]  # what came, then a clean end: the player retries
    assert stream.active_streams(user.pk) == 0


def test_a_completed_seedr_job_is_served_from_disk(fake, user, connected):
    fake.define(info_hash(42), "Clip", [("clip.mp4", 1_500_000)])
    job = services.add(user, magnet=magnet(42, "Clip"))
    drive(2)
    job = refreshed(job)
    assert job.status == Status.COMPLETED, job.reason
    assert fake.account("alice@seedr.test").is_empty()  # nothing left on Seedr: bytes can only come from disk
    links_before = fake.calls("fetch_file")
    response, data = get(link(user, job.files.get()), Range="bytes=1000000-")
    assert response.status_code == 206 and data == file_bytes(info_hash(42), "clip.mp4", 1_500_000)[1000000:]
    assert "X-Stream-Source" not in response and fake.calls("fetch_file") == links_before


def test_the_players_numbers_say_the_backend_sends_the_bytes(user, on_seedr):
    job, jobfile = on_seedr
    client = Client()
    client.force_login(user)
    answer = client.get(reverse("stream-stats", args=[job.pk, jobfile.pk]))
    assert answer.status_code == 200 and answer.json()["source"] == "backend"


def test_a_long_proxied_range_holds_little_memory(fake, user, connected, capsys):
    """40 MiB through the proxy, read as a player reads: the process's peak of traced allocations stays far
    under the brief's 50 MB per stream (the Seedr fake serving it runs in this process and counts too)."""
    size = 40 << 20  # the fake account holds 50 MB
    fake.define(info_hash(43), "Big", [("big.mkv", size)])
    job = services.add(user, magnet=magnet(43, "Big"))
    drive()
    for _ in range(4):
        fake.cut_next_download(100_000)
    dispatch.sync_running()
    run_bring_home(job.pk)
    url = link(user, refreshed(job).files.get())

    async def fetch():
        response = await AsyncClient().get(url, headers={"Range": "bytes=1000-"})
        assert response.streaming, response.content
        digest, count = hashlib.sha256(), 0
        async for chunk in response.streaming_content:
            digest.update(chunk)
            count += len(chunk)
        return response, digest.hexdigest(), count

    tracemalloc.start()
    began = time.monotonic()
    try:
        response, digest, count = async_to_sync(fetch)()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - began
    assert response.status_code == 206 and count == size - 1000
    assert digest == hashlib.sha256(file_bytes(info_hash(43), "big.mkv", size)[1000:]).hexdigest()
    assert peak < 20 << 20, peak
    with capsys.disabled():
        print(f"\nproxied {count / 2**20:.0f} MiB in {elapsed:.2f} s ({count / 2**20 / elapsed:.0f} MiB/s), "
              f"peak traced memory {peak / 2**20:.1f} MiB")
