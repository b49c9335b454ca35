"""The job page's Share links section in Chromium (real daphne): create a link with a limit, open it with no
account (the visitor's page and a download), revoke it, and the visitor gets the 410 page."""

from __future__ import annotations

import os

import httpx
import pytest
from playwright.sync_api import expect

from downloads.models import Status
from streaming.models import Share
from tests.accounts.factories import UserFactory
from tests.browser.conftest import log_in
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unusual passphrase 42"
MOVIE = os.urandom(300_000)


def test_create_use_and_revoke_a_share_link(page, live_server_url):
    owner = UserFactory(email="sharer@example.com", password=PASSWORD)
    job = JobFactory(user=owner, status=Status.COMPLETED, name="Holiday")
    path = job.data_dir / "Holiday/movie.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MOVIE)
    JobFileFactory(job=job, path="Holiday/movie.mp4", size_bytes=len(MOVIE), completed_bytes=len(MOVIE))

    log_in(page, owner.email, PASSWORD)
    page.goto(f"/jobs/{job.pk}/")
    section = page.locator("#shares")
    expect(section.get_by_text("No share links yet.")).to_be_visible()
    # SHARE_MAX_DAYS is 7 by default: the 30-day choice is not offered.
    expect(section.locator("#share-expiry option")).to_have_count(4)
    expect(section.locator("#share-file option")).to_have_count(2)  # whole download + the one file
    section.get_by_label("Expires after").select_option("24")
    section.get_by_label("Download limit").fill("2")
    section.get_by_role("button", name="Create link").click()
    item = section.locator(".share-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("0 of 2 downloads")
    url = item.get_by_label("Share link").input_value()
    share = Share.objects.get()
    assert url.endswith(f"/s/{share.token}/") and share.max_downloads == 2

    with httpx.Client(timeout=30) as visitor:  # no account, no cookie
        landing = visitor.get(url)
        assert landing.status_code == 200 and "movie.mp4" in landing.text
        file_url = live_server_url + f"/s/{share.token}/f/{share.job.files.get().pk}/movie.mp4"
        assert visitor.get(file_url).content == MOVIE

    item.get_by_role("button", name="Revoke").click()
    expect(item).to_contain_text("Revoked")
    expect(item.get_by_label("Share link")).to_have_count(0)
    with httpx.Client(timeout=30) as visitor:
        gone = visitor.get(url)
        assert gone.status_code == 410 and "turned off" in gone.text
    assert page.js_errors == []
