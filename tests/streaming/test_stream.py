"""The stream endpoint for files on disk (any backend, completed): credentials, file choice, Range, limits,
offload, and the player page. Streaming while downloading: tests/streaming/test_engine_streams.py and
tests/e2e/test_streaming.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from billing.services import current_plan
from downloads.models import Status
from streaming import live, stream
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db

MOVIE = os.urandom(700_000)
SMALL = os.urandom(200_000)
KEY = "flt_stream_" + "k" * 38


def make_job(user, contents, status=Status.COMPLETED, backend="seedr", complete=True):
    job = JobFactory(user=user, status=status, backend=backend, name="Film")
    files = {}
    for rel, (data, mime) in contents.items():
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[rel] = JobFileFactory(job=job, path=rel, size_bytes=len(data),
                                    completed_bytes=len(data) if complete else 0, mime_type=mime)
    return SimpleNamespace(job=job, files=files, user=user)


@pytest.fixture
def film(user):
    return make_job(user, {"Film/trailer.mp4": (SMALL, "video/mp4"), "Film/film.mkv": (MOVIE, "video/x-matroska"),
                           "Film/notes.txt": (os.urandom(900_000), "text/plain")})


def get(url, **headers):
    async def fetch():
        response = await AsyncClient().get(url, headers=headers)
        data = b"".join([c async for c in response.streaming_content]) if response.streaming else response.content
        return response, data

    return async_to_sync(fetch)()


def signed(film, rel):
    return stream.stream_url(film.user.pk, film.files[rel])


def test_signed_link_plays_the_file_with_range_and_inline(film):
    response, data = get(signed(film, "Film/film.mkv"), Range="bytes=1000-200999")
    assert response.status_code == 206
    assert data == MOVIE[1000:201000]
    assert response["Content-Range"] == f"bytes 1000-200999/{len(MOVIE)}"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/x-matroska"
    assert response["Content-Disposition"].startswith("inline;")


def test_primary_file_is_the_largest_video(film, user):
    client = Client()
    client.force_login(user)

    async def fetch():
        c = AsyncClient()
        await c.aforce_login(user)
        response = await c.get(f"/api/v1/stream/{film.job.pk}", headers={"Range": "bytes=0-99"})
        return response, b"".join([x async for x in response.streaming_content])

    response, data = async_to_sync(fetch)()
    assert response.status_code == 206 and data == MOVIE[:100]  # the .txt is larger but not a video


def test_api_key_and_head(film, user):
    ApiKeyFactory(user=user, raw=KEY)
    url = f"/api/v1/stream/{film.job.pk}/{film.files['Film/trailer.mp4'].pk}/"
    response, data = get(url, Authorization=f"Token {KEY}")
    assert response.status_code == 200 and data == SMALL

    async def head():
        return await AsyncClient().head(url, headers={"Authorization": f"Token {KEY}", "Range": "bytes=-10"})

    response = async_to_sync(head)()
    assert response.status_code == 206 and response["Content-Length"] == "10" and response.content == b""


@pytest.mark.parametrize("how", ["none", "bad key", "bad token", "other file's token"])
def test_no_or_bad_credentials_are_401(film, how):
    jobfile = film.files["Film/film.mkv"]
    url = f"/api/v1/stream/{film.job.pk}/{jobfile.pk}"
    headers = {}
    if how == "bad key":
        headers["Authorization"] = "Token flt_nope"
    elif how == "bad token":
        url += "?t=garbage"
    elif how == "other file's token":
        url += "?t=" + stream.stream_token(film.user.pk, film.job.pk, film.files["Film/trailer.mp4"].pk)
    response, _ = get(url, **headers)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_another_users_job_is_404(film, other_user):
    ApiKeyFactory(user=other_user, raw=KEY)
    response, _ = get(f"/api/v1/stream/{film.job.pk}/{film.files['Film/film.mkv'].pk}", Authorization=f"Token {KEY}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    response, _ = get(f"/api/v1/stream/{film.job.pk}", Authorization=f"Token {KEY}")
    assert response.status_code == 404


def test_malformed_range_is_416(film):
    response, _ = get(signed(film, "Film/film.mkv"), Range="bytes=abc")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(MOVIE)}"
    assert response.json()["code"] == "range_not_satisfiable"


def test_over_the_plans_concurrent_streams_is_503_with_retry_after(film, user):
    plan = current_plan(user)
    plan.max_concurrent_streams = 2
    plan.save()
    url = signed(film, "Film/film.mkv")

    async def scenario():
        client = AsyncClient()
        first = await client.get(url)
        second = await client.get(url)
        refused = await client.get(url)
        assert stream.active_streams(user.pk) == 2
        first_body = b"".join([c async for c in first.streaming_content])  # ends: its slot is free again
        again = await client.get(url)
        return first, second, refused, first_body, again

    first, second, refused, first_body, again = async_to_sync(scenario)()
    assert first.status_code == second.status_code == 200 and first_body == MOVIE
    assert refused.status_code == 503 and refused["Retry-After"] and refused.json()["code"] == "too_many_streams"
    assert again.status_code == 200


def test_memory_pressure_is_503(film, settings):
    settings.STREAM_MIN_AVAILABLE_MB = 10**9  # more than any machine has
    response, _ = get(signed(film, "Film/film.mkv"))
    assert response.status_code == 503 and response.json()["code"] == "memory_pressure"
    assert response["Retry-After"] == str(settings.STREAM_RETRY_AFTER)


def test_incomplete_file_of_a_backend_that_cannot_stream_is_409(user):
    partial = make_job(user, {"a.mp4": (SMALL, "video/mp4")}, status=Status.DOWNLOADING, complete=False)
    response, _ = get(signed(partial, "a.mp4"))
    assert response.status_code == 409 and response.json()["code"] == "not_ready"


def test_running_engine_job_without_a_live_engine_is_503(user):
    running = make_job(user, {"a.mp4": (SMALL, "video/mp4")}, status=Status.DOWNLOADING, backend="engine",
                       complete=False)
    running.job.claimed_by = "engine-gone"
    running.job.save()
    response, _ = get(signed(running, "a.mp4"))
    assert response.status_code == 503 and response.json()["code"] == "engine_unavailable"


@pytest.mark.parametrize("mode,header", [("x-accel-redirect", "X-Accel-Redirect"), ("x-sendfile", "X-Sendfile")])
def test_offload_hands_the_file_to_the_proxy(film, settings, mode, header):
    settings.STREAM_OFFLOAD = mode
    response, data = get(signed(film, "Film/film.mkv"), Range="bytes=0-9")
    assert response.status_code == 200 and data == b""
    value = response[header]
    target = film.job.data_dir / "Film/film.mkv"
    if mode == "x-sendfile":
        assert value == str(target.resolve())
    else:
        relative = target.resolve().relative_to(settings.DOWNLOADS_DIR.resolve())
        assert value == "/_protected/" + str(relative)
    # The proxy sends the file and answers the Range itself: no length or range of ours leaks into its answer.
    assert "Content-Range" not in response and response.get("Content-Length") in (None, "0")
    assert response["Content-Type"] == "video/x-matroska"


def test_expired_stream_link_is_410(film, settings):
    url = signed(film, "Film/film.mkv")
    settings.STREAM_LINK_MAX_AGE = -1
    response, _ = get(url)
    assert response.status_code == 410 and response.json()["code"] == "link_expired"


def test_player_page_and_stats(film, user):
    client = Client()
    client.force_login(user)
    jobfile = film.files["Film/film.mkv"]
    page = client.get(f"/d/play/{film.job.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'src="/api/v1/stream/{film.job.pk}/{jobfile.pk}?t=' in html and "player.js" in html
    stats = client.get(f"/api/v1/stream/{film.job.pk}/{jobfile.pk}/stats/").json()
    assert stats["source"] == "disk" and stats["size_bytes"] == len(MOVIE)
    other = Client()
    assert other.get(f"/d/play/{film.job.pk}/").status_code == 302  # to the login page


@contextlib.contextmanager
def silent_engine(*, answer_open: bool):
    """A peer on the engine's channel that stops answering (a hung or overloaded engine): it accepts, answers
    `open` if asked to, then reads and never replies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        done = threading.Event()

        def serve() -> None:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as lines:
                lines.readline()
                if answer_open:
                    lines.write(b'{"ok": true, "size": 1000, "piece_length": 100}\n')
                    lines.flush()
                done.wait(30)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"127.0.0.1:{server.getsockname()[1]}"
        finally:
            done.set()
            thread.join(5)


def timed(coroutine_function) -> float:
    async def run() -> float:
        began = time.monotonic()
        with pytest.raises(live.EngineUnavailable) as refused:
            await coroutine_function()
        assert refused.value.code == "engine_unreachable"
        return time.monotonic() - began

    return asyncio.run(run())


def test_an_engine_that_stops_answering_is_given_up_on_within_the_callers_time():
    """Every wait on the channel ends at the caller's deadline (the view's STREAM_TIMEOUT): open and read alike.
    Before, an answer was awaited for the wait plus 5 s, and the open for 8 s whatever the caller had left."""
    with silent_engine(answer_open=False) as address:
        assert timed(lambda: live.open_reader(address, 1, "a.mp4", timeout=0.5)) < 2

    async def read() -> None:
        reader = await live.open_reader(address, 1, "a.mp4", timeout=5)
        try:
            await reader.available(0, 0.5)
        finally:
            await reader.close()

    with silent_engine(answer_open=True) as address:
        assert timed(read) < 2
