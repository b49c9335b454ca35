"""The dashboard in a real browser against real daphne + qcluster: sign-up to a live job card, no reloads."""

from __future__ import annotations

import re

import pytest
import torf
from django_q.models import Schedule
from playwright.sync_api import Page, expect

from accounts.models import User
from downloads import backends, dispatch, intake, leases, services
from downloads.models import Job
from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import log_in
from tests.fakes.loopback_backend import LoopbackBackend

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
MAGNET = f"magnet:?xt=urn:btih:{HASH}&dn=Debian+ISO&tr=udp%3A%2F%2Ftracker.example%3A1337"
OTHER_MAGNET = "magnet:?xt=urn:btih:" + "b" * 40 + "&dn=Added+elsewhere"
PASSWORD = "a long and unusual passphrase 42"
MAGNET_CASES = [
    MAGNET,
    "magnet:?xt=urn:btih:" + "A" * 40,
    "magnet:?xt=urn:btih:" + "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",  # base32
    "magnet:?xt=urn:btmh:1220" + "d" * 64 + "&dn=v2",
    "magnet:?dn=x&xt=urn:btih:" + "e" * 40,
    "magnet:?xt=urn:btih:" + "e" * 39,
    "magnet:?xt=urn:btih:" + "g" * 40,
    "magnet:?xt=urn:btmh:1220" + "d" * 63,
    "magnet:?xt=urn:ed2k:abc",
    "magnet:?dn=only+a+name",
    "http://example.com/file.torrent",
    "",
]


def card(page: Page, name: str):
    return page.locator(".job-card", has=page.get_by_role("link", name=name, exact=True))


def mark_page(page: Page) -> None:
    """A marker that only survives if the page is never reloaded or navigated."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page, url: str) -> None:
    assert page.evaluate("window.__marker") == 1
    assert page.url == url


def wait_live(page: Page) -> None:
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    expect(page.locator(".live-status .live-text")).to_have_text("Live")


def open_add_dialog(page: Page) -> None:
    page.get_by_role("button", name="Add download", exact=True).click()
    expect(page.get_by_role("dialog", name="Add download")).to_be_visible()


def test_register_accept_policy_and_add_a_magnet_live(page: Page, live_server_url, tmp_path):
    page.goto("/accounts/register/")
    page.fill("#id_email", "newcomer@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/accounts/policy/"))
    page.get_by_role("button", name="I accept").click()
    page.wait_for_url(f"{live_server_url}/")
    dashboard_url = page.url

    expect(page.get_by_text("No downloads yet")).to_be_visible()
    wait_live(page)
    page.screenshot(path=str(tmp_path / "dashboard-empty.png"))
    mark_page(page)

    open_add_dialog(page)
    assert page.evaluate("document.activeElement.id") == "add-magnet"
    page.get_by_label("Magnet or .torrent link", exact=True).fill(MAGNET)
    page.get_by_role("button", name="Add", exact=True).click()

    debian = card(page, "Debian ISO")
    expect(debian).to_have_count(1)
    expect(page.get_by_role("dialog", name="Add download")).to_be_hidden()
    expect(debian.locator(".badge")).to_have_text("Queued")
    expect(debian.get_by_role("progressbar", name="Progress of Debian ISO")).to_have_attribute("aria-valuenow", "0")
    expect(debian.get_by_role("button", name="Pause Debian ISO")).to_be_visible()
    expect(debian.get_by_role("button", name="Retry Debian ISO")).to_be_hidden()
    expect(page.get_by_text("No downloads yet")).to_be_hidden()
    user = User.objects.get(email="newcomer@example.com")
    assert list(Job.objects.for_user(user).values_list("name", flat=True)) == ["Debian ISO"]

    # A job added elsewhere (another tab, the API) arrives through the websocket alone.
    services.add_magnet(user, OTHER_MAGNET)
    elsewhere = card(page, "Added elsewhere")
    expect(elsewhere).to_have_count(1)
    ids = page.locator(".job-card").evaluate_all("cards => cards.map(c => Number(c.dataset.jobId))")
    assert ids == sorted(ids, reverse=True), "newest first"
    assert_not_reloaded(page, dashboard_url)

    # Still usable on a 360 px phone: nothing wider than the screen.
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(tmp_path / "dashboard-360.png"), full_page=True)
    assert page.js_errors == []


def test_invalid_magnet_is_refused_in_the_dialog_and_creates_nothing(page: Page, live_server_url):
    user = UserFactory(email="careful@example.com")
    log_in(page, user.email)
    wait_live(page)
    mark_page(page)
    posts = []
    page.on("request", lambda r: r.method == "POST" and "/api/" in r.url and posts.append(r.url))

    opener = page.get_by_role("button", name="Add download", exact=True)
    open_add_dialog(page)
    magnet = page.get_by_label("Magnet or .torrent link", exact=True)
    magnet.fill("magnet:?xt=urn:btih:1234&dn=Broken")
    page.get_by_role("button", name="Add", exact=True).click()

    error = page.locator("#add-magnet-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("40 hexadecimal or 32 base32")
    expect(magnet).to_have_attribute("aria-invalid", "true")
    expect(magnet).to_be_focused()
    expect(page.get_by_role("dialog", name="Add download")).to_be_visible()

    magnet.fill("example.com/not-a-magnet")
    page.keyboard.press("Enter")
    expect(error).to_contain_text("neither a magnet link")

    # Esc closes the dialog and gives focus back to the button that opened it.
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Add download")).to_be_hidden()
    expect(opener).to_be_focused()

    # The browser's check agrees with the server's parser on what is a magnet link.
    for candidate in MAGNET_CASES:
        problem = page.evaluate("m => window.Flotilla.magnetProblem(m)", candidate)
        try:
            intake.parse_magnet(candidate)
            server_ok = True
        except intake.IntakeError:
            server_ok = False
        assert (problem is None) == server_ok, (candidate, problem)

    assert posts == []
    assert not Job.objects.exists()
    expect(page.locator(".job-card")).to_have_count(0)
    assert_not_reloaded(page, f"{live_server_url}/")
    assert page.js_errors == []


def test_batch_tab_by_keyboard_lists_bad_lines_and_adds_the_good_ones(page: Page, live_server_url, tmp_path):
    user = UserFactory(email="batcher@example.com")
    log_in(page, user.email)
    wait_live(page)
    mark_page(page)
    open_add_dialog(page)

    magnet_tab = page.get_by_role("tab", name="Magnet")
    magnet_tab.focus()
    page.keyboard.press("ArrowRight")
    batch_tab = page.get_by_role("tab", name="Batch")
    expect(batch_tab).to_have_attribute("aria-selected", "true")
    expect(batch_tab).to_be_focused()
    expect(page.get_by_role("tabpanel", name="Batch")).to_be_visible()
    expect(page.get_by_role("tabpanel", name="Magnet")).to_be_hidden()

    lines = [
        "magnet:?xt=urn:btih:" + "1" * 40 + "&dn=First",
        "not a magnet",
        "",
        "# a comment",
        "magnet:?xt=urn:btih:" + "2" * 40 + "&dn=Second",
    ]
    page.get_by_label("Magnet links, one per line").fill("\n".join(lines))
    expect(page.locator("#add-batch-summary")).to_have_text("2 valid magnets, 1 will be skipped.")
    expect(page.locator("#add-batch-error")).to_have_text(re.compile(r"^Line 2: This is not a magnet link"))
    page.get_by_role("button", name="Add", exact=True).click()

    expect(card(page, "First")).to_have_count(1)
    expect(card(page, "Second")).to_have_count(1)
    # The server refused line 2 as well; it stays in the box with its reason, the rest was added.
    expect(page.locator("#add-errors")).to_contain_text("Line 2")
    expect(page.get_by_label("Magnet links, one per line")).to_have_value("not a magnet")
    page.screenshot(path=str(tmp_path / "batch-dialog.png"))
    assert sorted(Job.objects.for_user(user).values_list("name", flat=True)) == ["First", "Second"]
    assert_not_reloaded(page, f"{live_server_url}/")
    assert page.js_errors == []


def test_torrent_tab_checks_the_file_then_uploads_it(page: Page, live_server_url, tmp_path):
    user = UserFactory(email="uploader@example.com")
    log_in(page, user.email)
    wait_live(page)
    mark_page(page)
    open_add_dialog(page)
    page.get_by_role("tab", name=".torrent").click()
    file_input = page.get_by_label(".torrent file")

    (tmp_path / "notes.txt").write_text("hello")
    file_input.set_input_files(str(tmp_path / "notes.txt"))
    expect(page.locator("#add-torrent-error")).to_have_text("The file must have the .torrent extension.")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("dialog", name="Add download")).to_be_visible()

    payload = tmp_path / "Big Buck Bunny"
    payload.mkdir()
    (payload / "movie.mkv").write_bytes(b"x" * 40_000)
    torrent = torf.Torrent(path=payload, trackers=["http://127.0.0.1:6970/announce"], piece_size=16384)
    torrent.generate()
    torrent.write(tmp_path / "bunny.torrent")
    file_input.set_input_files(str(tmp_path / "bunny.torrent"))
    expect(page.locator("#add-torrent-error")).to_be_hidden()
    page.get_by_role("button", name="Add", exact=True).click()

    bunny = card(page, "Big Buck Bunny")
    expect(bunny).to_have_count(1)
    expect(bunny.locator('[data-f="bytes"]')).to_have_text("0 B / 39.1 KiB")
    expect(page.get_by_role("dialog", name="Add download")).to_be_hidden()
    assert Job.objects.for_user(user).get().size_bytes == 40_000
    assert_not_reloaded(page, f"{live_server_url}/")
    assert page.js_errors == []


@pytest.fixture
def loopback_here(tmp_path):
    """The loopback backend in the test process too, sharing the subprocesses' remote state in DATA_DIR."""
    backend = backends.register(LoopbackBackend(state_dir=tmp_path / "loopback"))
    yield backend
    backends.unregister(backend.kind)


def test_progress_status_and_files_arrive_live(page: Page, live_server_url, settings, loopback_here, tmp_path):
    settings.PROGRESS_EVENT_INTERVAL = 0  # one progress event per sync below, however fast they come
    # This test polls the remote itself (below); the worker's own minutely sync would race it, and so would
    # the sub-minute poller: holding its lease here keeps every poller link from running.
    Schedule.objects.filter(func="downloads.tasks.sync").delete()
    leases.claim(dispatch.POLL_LEASE, "browser-test", ttl=3600)
    user = UserFactory(email="watcher@example.com")
    PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["engine", "loopback"]))
    log_in(page, user.email)
    wait_live(page)
    mark_page(page)

    open_add_dialog(page)
    page.get_by_label("Magnet or .torrent link", exact=True).fill("magnet:?xt=urn:btih:" + "c" * 40 + "&dn=Sintel")
    page.get_by_label("Backend").select_option(label="Loopback (test service)")
    page.get_by_role("button", name="Add", exact=True).click()

    sintel = card(page, "Sintel")
    bar = sintel.get_by_role("progressbar", name="Progress of Sintel")
    # The worker (qcluster) hands the job to the loopback service: the status changes under our eyes.
    expect(sintel.locator(".badge")).to_have_text("Downloading")
    # The card's buttons act through the API; the card follows.
    sintel.get_by_role("button", name="Pause Sintel").click()
    expect(sintel.locator(".badge")).to_have_text("Paused")
    expect(sintel.get_by_role("button", name="Pause Sintel")).to_be_hidden()
    sintel.get_by_role("button", name="Resume Sintel").click()
    expect(sintel.locator(".badge")).to_have_text("Starting")
    expect(sintel.get_by_role("button", name="Pause Sintel")).to_be_visible()
    for percent in ("25", "50", "75"):
        dispatch.sync_running()  # one remote poll: +25 %
        expect(bar).to_have_attribute("aria-valuenow", percent)
        expect(sintel.locator('[data-f="percent"]')).to_have_text(f"{percent}%")
    expect(sintel.locator('[data-f="down"]')).to_have_text("16.0 KiB/s")
    expect(sintel.locator('[data-f="peers"]')).to_have_text("3")
    dispatch.sync_running()
    expect(sintel.locator(".badge")).to_have_text("Completed")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#announcer")).to_have_text("Sintel completed")
    expect(sintel.get_by_role("button", name="Pause Sintel")).to_be_hidden()
    expect(sintel.get_by_role("button", name="Delete Sintel")).to_be_visible()
    assert_not_reloaded(page, f"{live_server_url}/")
    assert page.js_errors == []

    # The detail page lists the delivered file with a working signed download link.
    sintel.get_by_role("link", name="Sintel").click()
    job = Job.objects.for_user(user).get()
    page.wait_for_url(f"{live_server_url}/jobs/{job.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sintel")
    download = page.get_by_role("link", name="Download Sintel.bin")
    expect(download).to_be_visible()
    size = page.evaluate("async (url) => (await (await fetch(url)).arrayBuffer()).byteLength",
                         download.get_attribute("href"))
    assert size == job.size_bytes
    expect(page.locator("#event-list")).to_contain_text("Completed. Download complete.")
    page.screenshot(path=str(tmp_path / "job-detail.png"), full_page=True)

    # Events newer than the page are appended live.
    services.delete_job(user, job)
    expect(page.locator("#deleted-notice")).to_be_visible()
    expect(page.locator("#event-list li").last).to_contain_text("Deleted.")
    assert page.js_errors == []
