"""The Indexers and Search pages in real Chromium against real daphne + qcluster and the Torznab fake on
127.0.0.1: add a Torznab indexer through the dialog, test it (capabilities and latency), search and see its
results beside a dead indexer's error, grab a result onto the built-in engine (toast), and find the job on the
dashboard. The feed's API key never comes back in any page or API answer the browser receives."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Response, expect

from downloads.models import Job
from indexers.models import Indexer
from tests import procs
from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import EXTRA_ENV, log_in
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_dashboard import card
from tests.fakes.mam_fake import sample_torrent
from tests.fakes.torznab_fake import FakeTorznab
from tests.indexers.factories import IndexerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLE = "Project Hail Mary by Andy Weir [ENG / M4B]"
ARTEMIS = "Artemis by Andy Weir [ENG / MP3]"
MILLISECONDS = re.compile(r"^\d+ ms$")


@pytest.fixture
def live_server_url(transactional_db, tmp_path, collected_static) -> Iterator[str]:
    """Daphne and a qcluster on the test database; the rate limiter in the database (no Redis needed)."""
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    env = procs.process_env(tmp_path, **EXTRA_ENV, INDEXERS_RATE_LIMITER="database")
    with procs.qcluster(env, tmp_path), procs.daphne(env, tmp_path) as url:
        yield url


@pytest.fixture
def feed() -> Iterator[FakeTorznab]:
    fake = FakeTorznab(flavour="jackett").serve()
    fake.add(TITLE, size=1_073_741_824, seeders=42, peers=50, freeleech=True,
             torrent=sample_torrent("Project Hail Mary"))
    # Its .torrent names its file after the title, slash included: Flotilla refuses it (an unsafe path).
    fake.add(ARTEMIS, seeders=3, peers=4)
    yield fake
    fake.stop()


@pytest.fixture
def alice(transactional_db):
    user = UserFactory(email="alice@example.com")
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10))
    return user


class Bodies:
    """Every body our own server sends the page (read as it arrives)."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.bodies: list[tuple[str, str]] = []
        self._base = base_url
        page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        if not response.url.startswith(self._base) or response.status in (204, 301, 302):
            return
        try:
            self.bodies.append((response.url, response.text()))
        except Exception as exc:  # a body Playwright could not read must not pass the check unseen
            self.bodies.append((response.url, f"<unreadable: {exc}>"))

    def containing(self, secret: str) -> list[str]:
        return [url for url, body in self.bodies if secret in body]


def check_accessibility(page: Page) -> None:
    assert axe_violations(page) == []


def test_add_test_search_and_grab_onto_the_engine(page: Page, live_server_url, alice, feed):
    dead = IndexerFactory(owner=alice, name="Dead feed", url="http://127.0.0.1:9/api", timeout=3)
    bodies = Bodies(page, live_server_url)
    log_in(page, alice.email)

    # Add the Torznab feed through the dialog.
    page.goto("/indexers/")
    expect(page.get_by_role("heading", name="Indexers", exact=True)).to_be_visible()
    check_accessibility(page)
    page.get_by_role("button", name="Add indexer").click()
    dialog = page.get_by_role("dialog", name="Add indexer")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Kind").select_option("torznab")
    dialog.get_by_label("Name").fill("My Jackett")
    dialog.get_by_label("URL").fill(feed.feed_url)
    expect(dialog.locator("[data-secret=apikey]:visible [data-secret-state]")).to_have_text("(not set)")
    dialog.get_by_label("API key").fill(feed.apikey)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".toast", has_text="My Jackett was added")).to_be_visible()
    row = page.locator("#indexer-rows tr", has_text="My Jackett")
    expect(row).to_be_visible()
    indexer = Indexer.objects.get(owner=alice, name="My Jackett")
    assert indexer.secrets == {"apikey": feed.apikey} and indexer.kind == "torznab"

    # Test it: capabilities and latency, and the health columns fill in.
    row.get_by_role("button", name="Test My Jackett").click()
    expect(row.locator(".test-result")).to_contain_text("Works:")
    expect(row.locator(".test-result")).to_contain_text("searches search, book; 3 categories")
    expect(row.locator('[data-f="latency"]')).to_have_text(MILLISECONDS)
    assert [r["query"] for r in feed.paths(feed.api_path) if ("t", "caps") in r["query"]]

    # Editing shows the key as set, never its value.
    row.get_by_role("button", name="Edit My Jackett").click()
    edit = page.get_by_role("dialog", name="Edit My Jackett")
    expect(edit.locator("[data-secret=apikey]:visible [data-secret-state]")).to_have_text(
        "(set; leave blank to keep)")
    expect(edit.get_by_label("API key")).to_have_value("")
    edit.get_by_role("button", name="Cancel").click()

    # Search: the feed's results, and the dead indexer's error beside its timing.
    page.goto("/search/")
    check_accessibility(page)
    box = page.get_by_label("Search your indexers")
    page.keyboard.press("/")  # the layout's keyboard shortcut focuses the box
    expect(box).to_be_focused()
    box.fill("andy weir")
    page.get_by_role("button", name="Search", exact=True).click()
    rows = page.locator("#result-rows tr[data-result-id]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(TITLE)  # ranked: most seeders, freeleech
    expect(rows.first).to_contain_text("My Jackett")
    expect(rows.first).to_contain_text("42 / 8")
    expect(rows.first).to_contain_text("freeleech")
    expect(page.locator(f'#search-report li.ok[data-indexer="{indexer.pk}"]')).to_contain_text("2 results in")
    expect(page.locator(f'#search-report li.error[data-indexer="{dead.pk}"]')).to_contain_text("Dead feed")
    assert "q=andy+weir" in page.url

    # Sort by seeders, ascending on the second click.
    seeders = page.get_by_role("button", name="Seeders / leechers")
    seeders.click()
    seeders.click()
    expect(page.locator("th[data-sort=seeders]")).to_have_attribute("aria-sort", "ascending")
    expect(rows.first).to_contain_text("Artemis")

    # Grab the best one onto the built-in engine.
    page.get_by_label("Grab into").select_option("engine")
    page.get_by_role("button", name=f"Grab {TITLE}").click()
    expect(page.locator(".toast", has_text="was added to Built-in engine")).to_be_visible()
    job = Job.objects.get(user=alice)
    assert job.backend == "engine" and job.indexer_source.indexer_id == indexer.pk
    assert len(feed.paths("/dl/myanonamouse/")) == 1  # Flotilla fetched the .torrent, not the browser

    page.goto("/")
    expect(card(page, job.name)).to_be_visible()

    for path in ("/indexers/", "/api/v1/indexers/"):
        page.evaluate("url => fetch(url, {credentials: 'same-origin'}).then(r => r.text())", path)
    page.goto("/indexers/")
    assert bodies.containing(feed.apikey) == []
    assert page.js_errors == []


def test_a_refused_grab_shows_the_api_detail(page: Page, live_server_url, alice, feed):
    IndexerFactory(owner=alice, name="My Jackett", url=feed.feed_url, credentials=f'{{"apikey": "{feed.apikey}"}}')
    log_in(page, alice.email)
    page.goto("/search/?q=artemis")  # a query in the URL runs at once
    row = page.locator("#result-rows tr[data-result-id]", has_text=ARTEMIS)
    expect(row).to_be_visible()
    row.get_by_role("button", name=f"Grab {ARTEMIS}").click()
    expect(page.locator(".toast.error")).to_contain_text("The torrent contains a file name that is not allowed")
    expect(row.get_by_role("button", name=f"Grab {ARTEMIS}")).to_be_enabled()  # it can be tried again
    assert Job.objects.filter(user=alice).count() == 0
    assert page.js_errors == []


def test_without_indexers_the_search_page_leads_to_adding_one(page: Page, live_server_url, alice):
    log_in(page, alice.email)
    page.goto("/search/")
    page.get_by_role("link", name="Add an indexer").click()
    expect(page.get_by_role("dialog", name="Add indexer")).to_be_visible()
    assert page.js_errors == []

