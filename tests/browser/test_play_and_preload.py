"""Play without downloading and preload, in real Chromium against real daphne: Play on a search result (the
Torznab fake on 127.0.0.1) makes an ephemeral job and opens the player; the dashboard marks ephemeral jobs with
a Keep button that makes them ordinary downloads; the dashboard posts the cards on screen to
/api/v1/ui/viewport, the one under the pointer as "focused" and its neighbours "adjacent"."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from downloads.models import Job, PreloadItem, Status
from downloads.swarm import make_torrent
from tests.accounts.factories import UserFactory
from tests.browser.conftest import log_in
from tests.browser.test_dashboard import card
from tests.browser.test_search_page import alice, live_server_url  # noqa: F401 - fixtures
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.e2e.conftest import wait_for
from tests.fakes.torznab_fake import FakeTorznab
from tests.indexers.factories import IndexerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


FILM = "Sintel 2010 1080p"
BOOK = "Project Hail Mary by Andy Weir [ENG / EPUB]"


@pytest.fixture
def feed(tmp_path) -> Iterator[FakeTorznab]:
    fake = FakeTorznab(flavour="jackett").serve()
    (tmp_path / "film").mkdir()
    (tmp_path / "film" / "Sintel.mp4").write_bytes(b"\0" * 300_000)
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "Hail Mary.epub").write_bytes(b"\0" * 30_000)
    fake.add(FILM, category=2040, torrent=make_torrent(tmp_path / "film", ["http://127.0.0.1:9/announce"]))
    fake.add(BOOK, category=7020, torrent=make_torrent(tmp_path / "book", ["http://127.0.0.1:9/announce"]))
    yield fake
    fake.stop()


def test_play_on_a_search_result_opens_the_player_on_an_ephemeral_job(page: Page, live_server_url, alice, feed):  # noqa: F811
    IndexerFactory(owner=alice, name="My Jackett", url=feed.feed_url, credentials=f'{{"apikey": "{feed.apikey}"}}')
    log_in(page, alice.email)
    page.goto("/search/?q=2010")
    page.get_by_role("button", name=f"Play {FILM} without downloading").click()
    page.wait_for_url(re.compile(r"/d/play/\d+/$"))
    job = Job.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert job.user == alice and job.ephemeral and job.backend == "engine"
    expect(page.get_by_text("Sintel.mp4").first).to_be_visible()


def test_play_on_a_result_with_nothing_to_play_says_so(page: Page, live_server_url, alice, feed):  # noqa: F811
    IndexerFactory(owner=alice, name="My Jackett", url=feed.feed_url, credentials=f'{{"apikey": "{feed.apikey}"}}')
    log_in(page, alice.email)
    page.goto("/search/?q=epub")
    button = page.get_by_role("button", name=f"Play {BOOK} without downloading")
    button.click()
    expect(page.locator("#toasts")).to_contain_text("no video or audio file")
    expect(button).to_be_enabled()


def running(user, name: str, **fields) -> Job:
    job = JobFactory(user=user, name=name, status=Status.DOWNLOADING, claimed_by="engine-x", **fields)
    JobFileFactory(job=job, path=f"{name}/{name}.mp4", size_bytes=5_000_000, mime_type="video/mp4")
    return job


def test_dashboard_marks_ephemeral_jobs_keeps_them_and_posts_the_viewport(page: Page, live_server_url):  # noqa: F811
    user = UserFactory(email="viewer@example.com")
    first, middle, last = running(user, "First"), running(user, "Middle", ephemeral=True), running(user, "Last")
    log_in(page, user.email)

    # All three cards are on screen: each is queued "visible"; none is focused before the pointer comes.
    wait_for(lambda: PreloadItem.objects.filter(user=user).count() == 3, "the cards on screen are queued", 15)
    assert set(PreloadItem.objects.values_list("priority", flat=True)) == {2}

    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/ui/viewport")
                             and '"focused"' in (r.post_data or "")) as posted:
        card(page, "Middle").hover()
    assert {"job": middle.pk, "priority": "focused"} in posted.value.post_data_json["items"]
    wait_for(lambda: dict(PreloadItem.objects.values_list("job_id", "priority")) ==
             {middle.pk: 4, first.pk: 3, last.pk: 3}, "the hovered card focused, its neighbours adjacent", 15)

    # The ephemeral card says so, and Keep makes it an ordinary download.
    ephemeral_card = card(page, "Middle")
    expect(ephemeral_card.get_by_text("Play only")).to_be_visible()
    expect(card(page, "First").get_by_text("Play only")).to_have_count(0)
    ephemeral_card.get_by_role("button", name="Keep Middle as a download").click()
    expect(page.locator("#toasts")).to_contain_text("is kept as a download")
    expect(ephemeral_card.get_by_text("Play only")).to_have_count(0)
    middle.refresh_from_db()
    assert middle.ephemeral is False


def test_the_job_page_marks_an_ephemeral_job(page: Page, live_server_url):  # noqa: F811
    user = UserFactory(email="single@example.com")
    job = running(user, "Alone", ephemeral=True)
    log_in(page, user.email)
    page.goto(f"/jobs/{job.pk}/")
    header = page.locator("#job-header")
    expect(header.get_by_text("Play only")).to_be_visible()
    header.get_by_role("button", name="Keep Alone as a download").click()
    expect(header.get_by_text("Play only")).to_have_count(0)
    wait_for(lambda: not Job.objects.get(pk=job.pk).ephemeral, "the job is kept", 10)
