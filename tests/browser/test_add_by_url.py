"""Pasting an indexer's .torrent link in the "Add download" dialog, in a real browser against real daphne +
qcluster: the web process fetches the link from a real HTTP server on 127.0.0.1 and the card appears live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from downloads.models import Job
from tests import procs
from tests.accounts.factories import UserFactory
from tests.browser.conftest import EXTRA_ENV, log_in
from tests.browser.test_dashboard import assert_not_reloaded, card, mark_page, open_add_dialog, wait_live
from tests.downloads.test_add_by_url import Site, build_torrent, serving

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LINK_CASES = {
    "https://indexer.example/dl/42.torrent?passkey=abc": None,
    "HTTP://indexer.example/get?id=7": None,
    "magnet:?xt=urn:btih:" + "a" * 40: None,
    "magnet:?xt=urn:btih:1234": "40 hexadecimal or 32 base32",
    "indexer.example/dl/42.torrent": "neither a magnet link",
    "ftp://indexer.example/42.torrent": "neither a magnet link",
    "https://user:pw@indexer.example/42.torrent": "user name or password",
    "https://": "not a valid web address",
    "": "Paste a magnet link or a link",
}


@pytest.fixture
def site() -> Iterator[Site]:
    with serving() as site:
        yield site


@pytest.fixture
def live_server_url(transactional_db, tmp_path, collected_static) -> Iterator[str]:
    """Like conftest's, but the web process may fetch links from 127.0.0.1 (where the test's site runs)."""
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    env = procs.process_env(tmp_path, **EXTRA_ENV, TORRENT_URL_ALLOWED_NETWORKS="127.0.0.1/32")
    with procs.qcluster(env, tmp_path), procs.daphne(env, tmp_path) as url:
        yield url


def test_a_pasted_torrent_link_is_fetched_and_its_card_appears_live(page: Page, live_server_url, site, tmp_path):
    torrent = build_torrent(tmp_path, name="Indexer Pack")
    site.routes["/dl/42.torrent?passkey=abc"] = (200, {"Content-Type": "application/x-bittorrent"}, torrent.dump())
    site.routes["/login"] = (200, {"Content-Type": "text/html"}, b"<!doctype html><title>Log in first</title>")
    user = UserFactory(email="indexer-fan@example.com")
    log_in(page, user.email)
    wait_live(page)
    mark_page(page)
    dialog = page.get_by_role("dialog", name="Add download")

    # The browser's check takes magnets and http(s) links alike, and says what is wrong with anything else.
    for candidate, problem in LINK_CASES.items():
        found = page.evaluate("v => window.Flotilla.linkProblem(v)", candidate)
        assert (found is None) if problem is None else (problem in (found or "")), (candidate, found)

    # A link that answers with a web page: the server's intake says so, the dialog stays open, nothing is added.
    open_add_dialog(page)
    field = page.get_by_label("Magnet or .torrent link", exact=True)
    field.fill(f"{site.base}/login")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-errors")).to_contain_text("This is not a .torrent file.")
    expect(dialog).to_be_visible()
    assert site.requests == ["/login"]
    assert not Job.objects.exists()

    # The indexer's .torrent link: fetched by the web process, the card appears without a reload.
    field.fill(f"{site.base}/dl/42.torrent?passkey=abc")
    page.get_by_role("button", name="Add", exact=True).click()
    pack = card(page, "Indexer Pack")
    expect(pack).to_have_count(1)
    expect(pack.locator(".badge")).to_have_text("Queued")
    expect(pack.locator('[data-f="bytes"]')).to_have_text("0 B / 40.5 KiB")
    expect(dialog).to_be_hidden()
    assert site.requests == ["/login", "/dl/42.torrent?passkey=abc"]
    job = Job.objects.for_user(user).get()
    assert job.info_hash == torrent.infohash and job.backend == "engine"
    assert_not_reloaded(page, f"{live_server_url}/")
    assert page.js_errors == []
