"""All the way through in a real browser: add a magnet, the real engine downloads it from a loopback
swarm, the progress bar climbs to 100 % live, and the downloaded file has the seeded bytes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from billing.services import current_plan
from downloads.models import Job
from tests import procs
from tests.accounts.factories import UserFactory
from tests.browser.conftest import EXTRA_ENV, log_in
from tests.browser.test_dashboard import assert_not_reloaded, card, mark_page, open_add_dialog, wait_live

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_server_url(transactional_db, tmp_path, collected_static) -> Iterator[str]:
    """Daphne and a real `runengine` (loopback-only settings) on the test database; no worker needed."""
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    env = procs.process_env(tmp_path, **EXTRA_ENV, **procs.ENGINE_ENV)
    with procs.engine(env, tmp_path), procs.daphne(env, tmp_path) as url:
        yield url


def test_a_magnet_added_in_the_page_downloads_live_and_the_file_comes_back(page: Page, live_server_url, withhold,
                                                                        tmp_path):
    # Half of it is in the swarm until the page has shown the climb: the bar stops there, however slow the machine.
    film = withhold("Big Buck Bunny.bin", 12 << 20, keep=0.5)
    user = UserFactory(email="watcher@example.com")
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 0, 0  # completes as soon as it is downloaded
    plan.save()
    log_in(page, user.email)
    wait_live(page)
    mark_page(page)

    open_add_dialog(page)
    page.get_by_label("Magnet or .torrent link", exact=True).fill(film.magnet)
    page.get_by_role("button", name="Add", exact=True).click()

    bunny = card(page, "Big Buck Bunny.bin")
    bar = bunny.get_by_role("progressbar", name="Progress of Big Buck Bunny.bin")
    expect(bunny.locator(".badge")).to_have_text("Downloading", timeout=30_000)
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^([1-9]|[1-9][0-9])$"), timeout=30_000)
    film.release()
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    expect(bunny.locator(".badge")).to_have_text("Completed", timeout=30_000)
    assert_not_reloaded(page, f"{live_server_url}/")

    bunny.get_by_role("link", name="Big Buck Bunny.bin").click()
    job = Job.objects.for_user(user).get()
    page.wait_for_url(f"{live_server_url}/jobs/{job.pk}/")
    link = page.get_by_role("link", name="Download Big Buck Bunny.bin")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == film.sha256
    assert page.js_errors == []
