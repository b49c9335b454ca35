"""The Seedr proxy through a real daphne and a real HTTP client: ranges arrive byte-exact, and a Seedr file host
that stalls mid-body ends the response visibly within about STREAM_TIMEOUT (chunked), instead of leaving the
player waiting on a promised Content-Length."""

from __future__ import annotations

import time

import httpx
import pytest

from downloads import dispatch
from downloads.models import Status
from seedr import services
from streaming import stream
from tests.downloads.runs import run_bring_home
from tests.fakes.seedr_fake import file_bytes
from tests.procs import daphne, process_env
from tests.seedr import conftest as seedr_fixtures
from tests.seedr.conftest import drive, info_hash, magnet, refreshed

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

fake, connected, plan = seedr_fixtures.fake, seedr_fixtures.connected, seedr_fixtures.plan
SIZE = 3_000_000


@pytest.fixture
def server(tmp_path, fake, settings):
    env = process_env(tmp_path, SEEDR_API_URL=fake.api_url, SEEDR_OAUTH_URL=fake.oauth_url, STREAM_TIMEOUT="2")
    with daphne(env, tmp_path) as base_url:
        yield base_url


def test_a_file_on_seedr_over_daphne_and_a_stalled_host_ends_the_body(server, fake, user, connected):
    fake.define(info_hash(51), "Film", [("film.mp4", SIZE)])
    job = services.add(user, magnet=magnet(51, "Film"))
    drive()
    for _ in range(4):
        fake.cut_next_download(100_000)
    dispatch.sync_running()
    run_bring_home(job.pk)
    assert refreshed(job).status == Status.TRANSFERRING
    url = server + stream.stream_url(user.pk, job.files.get())
    source = file_bytes(info_hash(51), "film.mp4", SIZE)

    with httpx.Client(timeout=30) as http:
        answer = http.get(url, headers={"Range": "bytes=2000000-2099999"})
        assert answer.status_code == 206 and answer.content == source[2000000:2100000]
        assert answer.headers["content-range"] == f"bytes 2000000-2099999/{SIZE}"

        fake.hold_next_download(400_000)
        began = time.monotonic()
        try:
            answer = http.get(url, headers={"Range": "bytes=0-"})
        finally:
            fake.release_downloads()
        elapsed = time.monotonic() - began
    assert answer.status_code == 206 and answer.content == source[:400_000]
    assert elapsed < 15, elapsed  # STREAM_TIMEOUT is 2 s here; the client's own timeout is 30 s
