"""Chromium plays a video from the player page while the built-in engine is still downloading it.

The real chain: a loopback tracker and a rate-limited libtorrent seeder (tests/swarm.py) serve the issue's
1080p 30 s test video (made by ffmpeg at test time, `moov` at the end as most downloads have it); `runengine`
downloads it; the dashboard's card grows a Play button once the engine knows the file; daphne streams it to
Chromium through the engine's stream channel. The only peer sends about 1.5 times the video's bitrate and lacks
one piece (at 70 %, which the test never plays), so the download is still going on at every check, however slow
the machine: with a full seeder the whole file took ~20 s, and a loaded machine could finish it before the seek.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from downloads.models import Job, JobFile, ProcessHeartbeat, Status
from downloads.swarm import make_torrent
from tests import procs
from tests.accounts.factories import ApiKeyFactory, UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import EXTRA_ENV, log_in
from tests.browser.test_dashboard import card, wait_live
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.e2e.conftest import wait_for
from tests.streaming.media import make_video

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY = "flt_browser_player" + "p" * 31
PIECE = 64 * 1024
RATE = 256 * 1024  # bytes/s from the only seeder: above the video's ~175 KB/s, far below loopback speed
H264 = 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"'
# Records every `error` event of the <video>, from before the page's own scripts run (errors do not bubble:
# capture them at the document).
WATCH_ERRORS = """
window.__videoErrors = [];
document.addEventListener("error", (e) => {
  if (e.target && e.target.tagName === "VIDEO") {
    window.__videoErrors.push(e.target.error ? e.target.error.code + " " + e.target.error.message : "error");
  }
}, true);
"""


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("player-videos")


@pytest.fixture
def live_server_url(transactional_db, tmp_path, collected_static) -> Iterator[str]:
    """Daphne and a real `runengine` (loopback-only settings) as separate processes on the test database."""
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    env = procs.process_env(tmp_path, **EXTRA_ENV, **procs.ENGINE_ENV)
    with procs.engine(env, tmp_path), procs.daphne(env, tmp_path) as url:
        yield url


def downloaded(job_id: int) -> int:
    return JobFile.objects.filter(job_id=job_id).values_list("completed_bytes", flat=True).first() or 0


def video(page: Page, expression: str):
    return page.evaluate(f"(() => {{ const v = document.getElementById('player-media'); return {expression}; }})()")


def test_chromium_plays_and_seeks_while_the_engine_downloads(page: Page, live_server_url, tmp_path, videos,
                                                             tracker, leecher):
    assert page.evaluate(f"document.createElement('video').canPlayType('{H264}')") == "probably", (
        "this Chromium cannot play H.264/AAC: give tests/streaming/media.py a VP9/Opus WebM profile for this test")
    source = make_video(videos, "1080p30", faststart=False)
    data = source.read_bytes()
    size = len(data)
    folder = tmp_path / "torrent"
    folder.mkdir()
    (folder / "film.mp4").write_bytes(data)
    torrent = make_torrent(folder / "film.mp4", [tracker.announce_url], PIECE)

    user = UserFactory(email="viewer@example.com")
    ApiKeyFactory(user=user, raw=KEY)
    PlanAssignmentFactory(user=user, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0,
                                                      max_concurrent_streams=10))
    log_in(page, user.email)  # first: the download must still be going on while the page plays
    wait_live(page)

    withheld = size * 7 // 10 // PIECE  # 21 s into the video: after the first play, before the seek's 24 s
    peer = leecher.offer_part(torrent, data, tmp_path / "peer", "film.mp4", PIECE,
                              [n for n in range(-(-size // PIECE)) if n != withheld], upload_limit=RATE)
    with httpx.Client(base_url=live_server_url, headers={"Authorization": f"Token {KEY}"}, timeout=30) as client:
        response = client.post("/api/v1/jobs/", files={"torrent": ("film.torrent", torrent)})
        assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    wait_for(lambda: JobFile.objects.filter(job_id=job_id).exists() and Job.objects.get(pk=job_id).claimed_by,
             "the engine holds the job and knows its file", 60)
    wait_for(lambda: ProcessHeartbeat.objects.filter(info__stream_address__isnull=False).exists(),
             "the engine published its stream channel", 30)

    # The card arrived live without a Play button; it shows once the engine registered a video file.
    film = card(page, "film.mp4")
    expect(film).to_be_visible()
    page.add_init_script(WATCH_ERRORS)
    film.get_by_role("link", name="Play film.mp4").click()
    page.wait_for_url(f"{live_server_url}/d/play/{job_id}/")
    expect(page.get_by_role("heading", name="film.mp4")).to_be_visible()
    # The header (moov) is at the end of the file: metadata means the engine fetched the tail first.
    page.wait_for_function("document.getElementById('player-media').readyState >= 1", timeout=60_000)
    assert abs(video(page, "v.duration") - 30) < 0.5
    assert downloaded(job_id) < size, "the whole file was there before the player started"

    video(page, "(v.muted = true, v.play(), null)")  # muted: Chromium's autoplay policy allows it
    page.wait_for_function("document.getElementById('player-media').currentTime > 1.5", timeout=30_000)
    expect(page.locator("#player-ready")).to_have_attribute("data-state", re.compile(r"^playing"))

    target = 0.8 * 30
    still_downloading = downloaded(job_id) < size
    # From here the peer sends at loopback speed: the seek's wait is the engine's and the player's, not the rate's.
    peer.set_upload_limit(-1)
    began = time.monotonic()
    video(page, f"(v.currentTime = {target}, null)")
    page.wait_for_function(
        f"(() => {{ const v = document.getElementById('player-media');"
        f" return !v.seeking && !v.paused && v.currentTime > {target + 0.2}; }})()", timeout=10_000)
    seek_to_play = time.monotonic() - began
    at_seek = downloaded(job_id)
    page.wait_for_function(f"document.getElementById('player-media').currentTime > {target + 1.5}", timeout=10_000)
    print(f"\nseek to 80 % playing again after {seek_to_play:.2f} s, {at_seek} of {size} bytes downloaded then;"
          f" player's numbers: {page.locator('#player-stats').inner_text()!r}")
    assert still_downloading, "the download had finished before the seek: nothing was streamed from the swarm"

    assert page.evaluate("window.__videoErrors") == []
    stats = page.locator("#player-stats")
    for name in ("Time to first byte", "Time to first frame", "Last seek played after"):
        expect(stats.locator("div", has_text=name).locator("dd")).to_have_text(
            re.compile(r"^\d+(\.\d)? m?s$"))
    expect(stats.locator('[data-stat="peers"]')).to_have_text(re.compile(r"^[1-9]\d* \("))
    expect(stats.locator('[data-stat="source"]')).to_have_text("the download, as it arrives")
    expect(stats.locator('[data-stat="bitrate"]')).to_contain_text("Mbit/s")
    assert page.js_errors == []


def test_a_finished_file_plays_from_disk_and_a_missing_one_says_why(page: Page, live_server_url, tmp_path, videos):
    clip = make_video(videos, "720p10")
    user = UserFactory(email="viewer@example.com")
    job = JobFactory(user=user, name="Finished", status=Status.COMPLETED, size_bytes=clip.stat().st_size * 2)
    here = JobFileFactory(job=job, path="Finished/clip.mp4", mime_type="video/mp4", size_bytes=clip.stat().st_size,
                          completed_bytes=clip.stat().st_size)
    gone = JobFileFactory(job=job, path="Finished/gone.mp4", mime_type="video/mp4", size_bytes=1000,
                          completed_bytes=1000)
    folder = tmp_path / "downloads" / str(user.pk) / str(job.pk) / "Finished"  # the daphne's DOWNLOADS_DIR
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(clip.read_bytes())
    log_in(page, user.email)

    page.add_init_script(WATCH_ERRORS)
    page.goto(f"/d/play/{job.pk}/{here.pk}/")
    page.wait_for_function("document.getElementById('player-media').readyState >= 3")
    expect(page.locator("#player-ready")).to_have_text("Ready to play.")
    expect(page.locator('[data-stat="source"]')).to_have_text("the finished file")
    expect(page.locator('[data-stat="progress"]')).to_have_text(re.compile(r"^100 % of "))
    video(page, "(v.muted = true, v.play(), null)")
    page.wait_for_function("document.getElementById('player-media').currentTime > 1")
    assert page.evaluate("window.__videoErrors") == []

    # Complete in the database, absent on disk: the alert gives the stream's own reason and a way to retry.
    page.goto(f"/d/play/{job.pk}/{gone.pk}/")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("not downloaded yet")
    expect(alert.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.locator("#player-ready")).to_have_attribute("data-state", "error")
    assert page.js_errors == []
