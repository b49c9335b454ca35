"""The interface in real Chromium against real daphne + qcluster: the sidebar and its drawer, the theme toggle,
toasts (success and the API's error sentence), skeletons while loading, the file browser three folders deep,
charts drawn from real rows and live events, keyboard shortcuts, and the Plans page's upgrade request."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, Route, expect

from billing.models import UpgradeRequest, UsageDay
from config.errors import DomainError
from downloads import events, services
from downloads.models import EventKind, Job, Status
from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import log_in
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MIB = 1024**2
PHONE = {"width": 390, "height": 844}


def wait_live(page: Page) -> None:
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")


def test_sidebar_on_desktop_drawer_on_a_phone_and_the_theme_toggle(page: Page, live_server_url):
    user = UserFactory(email="navigator@example.com")
    PlanAssignmentFactory(user=user, plan=PlanFactory(name="Gold"))
    log_in(page, user.email)
    sidebar = page.get_by_role("complementary", name="Sidebar")
    main_nav = page.get_by_role("navigation", name="Main")
    expect(main_nav).to_be_visible()
    expect(main_nav.get_by_role("link", name="Downloads")).to_have_attribute("aria-current", "page")
    expect(sidebar.locator("[data-plan-badge]")).to_have_text("Gold")
    expect(sidebar.locator(".live-status .live-text")).to_have_text("Live")
    expect(page.locator("#drawer-toggle")).to_be_hidden()
    # No dead links: every entry shown leads to a page that answers.
    hrefs = main_nav.get_by_role("link").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert "/usage/" in hrefs and "/plans/" in hrefs
    for href in hrefs:
        assert page.request.get(href).status == 200, href
    main_nav.get_by_role("link", name="Usage").click()
    page.wait_for_url(f"{live_server_url}/usage/")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage")).to_have_attribute(
        "aria-current", "page")
    # The connection state shows on pages whose own script opens no stream, too.
    expect(page.locator(".live-status .live-text")).to_have_text("Live")

    page.set_viewport_size(PHONE)
    toggle = page.get_by_role("button", name="Open navigation")
    expect(toggle).to_be_visible()
    expect(sidebar).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(page.locator("#drawer-toggle")).to_have_attribute("aria-expanded", "true")
    expect(main_nav.get_by_role("link", name="Usage")).to_be_focused()
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(page.get_by_role("button", name="Open navigation")).to_be_focused()
    page.get_by_role("button", name="Open navigation").click()
    page.locator("#drawer-backdrop").click(position={"x": PHONE["width"] - 10, "y": 400})
    expect(sidebar).to_be_hidden()
    page.get_by_role("button", name="Open navigation").click()
    main_nav.get_by_role("link", name="Plans").click()
    page.wait_for_url(f"{live_server_url}/plans/")
    expect(sidebar).to_be_hidden()

    # The theme: the OS preference first, then the toggle, which is remembered.
    page.emulate_media(color_scheme="light")
    background = "getComputedStyle(document.body).backgroundColor"
    light_bg = page.evaluate(background)
    page.emulate_media(color_scheme="dark")
    dark_bg = page.evaluate(background)
    assert light_bg != dark_bg
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Switch to light theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert page.evaluate(background) == light_bg
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    expect(page.get_by_role("button", name="Switch to dark theme")).to_be_visible()
    assert page.js_errors == []


def test_toasts_on_success_and_on_an_api_error_and_optimistic_card(page: Page, live_server_url):
    user = UserFactory(email="toasted@example.com")
    log_in(page, user.email)
    wait_live(page)
    # Hold the create request: the optimistic card shows before the server answers.
    held: list[Route] = []
    page.route("**/api/v1/jobs/",
               lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    page.keyboard.press("a")
    expect(page.get_by_role("dialog", name="Add download")).to_be_visible()
    page.get_by_label("Magnet or .torrent link", exact=True).fill("magnet:?xt=urn:btih:" + "d" * 40 + "&dn=Toast+Test")
    page.get_by_role("button", name="Add", exact=True).click()
    placeholder = page.locator(".optimistic", has_text="Toast Test")
    expect(placeholder).to_be_visible()
    expect(placeholder.locator(".badge")).to_have_text("Adding…")
    expect(page.get_by_text("No downloads yet")).to_be_hidden()
    assert len(held) == 1 and not Job.objects.exists()
    held[0].continue_()
    page.unroute("**/api/v1/jobs/")
    toasts = page.locator("#toasts")
    expect(toasts.get_by_role("status").filter(has_text="Added Toast Test.")).to_be_visible()
    expect(placeholder).to_have_count(0)
    card = page.locator(".job-card", has=page.get_by_role("link", name="Toast Test", exact=True))
    expect(card).to_have_count(1)

    card.get_by_role("button", name="Pause Toast Test").click()
    expect(toasts.get_by_role("status").filter(has_text="Paused Toast Test.")).to_be_visible()
    expect(card.locator(".badge")).to_have_text("Paused")

    # The job is cancelled behind the page's back (no event): Resume is refused, and the toast says why,
    # in the API's own words.
    job = Job.objects.get()
    Job.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
    with pytest.raises(DomainError) as refused:
        services.resume_job(user, Job.objects.get())
    card.get_by_role("button", name="Resume Toast Test").click()
    alert = toasts.get_by_role("alert")
    expect(alert).to_contain_text(refused.value.detail)
    # A toast can be dismissed by keyboard.
    alert.get_by_role("button", name="Dismiss notification").focus()
    page.keyboard.press("Enter")
    expect(alert).to_have_count(0)
    assert page.js_errors == []


def test_keyboard_shortcuts_slash_searches_a_adds_escape_returns_focus(page: Page, live_server_url):
    user = UserFactory(email="keys@example.com")
    JobFactory(user=user, name="Ubuntu ISO")
    JobFactory(user=user, name="Big Buck Bunny")
    log_in(page, user.email)
    wait_live(page)
    page.keyboard.press("/")
    search = page.get_by_role("searchbox", name=re.compile("Search downloads"))
    expect(search).to_be_focused()
    page.keyboard.type("bunny")
    expect(page.locator(".job-card:visible")).to_have_count(1)
    expect(page.get_by_role("link", name="Big Buck Bunny")).to_be_visible()
    page.keyboard.type("zzz")
    expect(page.get_by_text("No download matches your search.")).to_be_visible()
    search.fill("")
    expect(page.locator(".job-card:visible")).to_have_count(2)

    filter_link = page.get_by_role("link", name="Completed", exact=True)
    filter_link.focus()
    page.keyboard.press("a")
    expect(page.get_by_role("dialog", name="Add download")).to_be_visible()
    expect(page.get_by_label("Magnet or .torrent link", exact=True)).to_be_focused()
    page.keyboard.press("a")  # typing into the dialog, not a shortcut
    expect(page.get_by_label("Magnet or .torrent link", exact=True)).to_have_value("a")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Add download")).to_be_hidden()
    expect(filter_link).to_be_focused()
    assert page.js_errors == []


def _deep_job(user) -> Job:
    job = JobFactory(user=user, name="Nested Season", status=Status.COMPLETED, size_bytes=8 * MIB)
    JobFileFactory(job=job, path="Nested Season/Extras/Behind/Scenes/making-of.mkv", size_bytes=4 * MIB,
                   completed_bytes=4 * MIB, mime_type="video/x-matroska")
    JobFileFactory(job=job, path="Nested Season/Extras/Behind/Scenes/making-of.en.srt", size_bytes=MIB // 2,
                   completed_bytes=MIB // 2, mime_type="application/x-subrip")
    JobFileFactory(job=job, path="Nested Season/cover.jpg", size_bytes=MIB // 2, completed_bytes=MIB // 2,
                   mime_type="image/jpeg")
    JobFileFactory(job=job, path="Nested Season/theme.flac", size_bytes=3 * MIB, completed_bytes=0,
                   mime_type="audio/flac")
    return job


def test_file_browser_skeleton_breadcrumbs_three_deep_icons_piece_map_and_speed(page: Page, live_server_url):
    user = UserFactory(email="browser@example.com")
    job = _deep_job(user)
    for n, rate in enumerate((100_000, 300_000, 250_000, 400_000)):
        events.emit(job, EventKind.PROGRESS, Status.DOWNLOADING,
                    {"status": "downloading", "progress": n / 4, "download_rate": rate, "upload_rate": rate // 10})
    log_in(page, user.email)
    held: list[Route] = []
    page.route("**/api/v1/jobs/*/files/", lambda route: held.append(route))
    page.goto(f"/jobs/{job.pk}/")
    # While the file list loads, skeleton rows stand where it will be.
    skeleton = page.locator("#file-tree .skeleton").first
    expect(skeleton).to_be_visible()
    expect(page.locator("#file-tree")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#file-tree table")).to_be_hidden()
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/api/v1/jobs/*/files/")
    expect(page.locator("#file-tree .skeleton")).to_have_count(0)
    tree = page.locator("#file-tree")
    expect(tree).not_to_have_attribute("aria-busy", "true")

    # Icons by type, drawn as inline SVG (never emoji); sizes and per-file completion.
    kinds = {"making-of.mkv": "video", "making-of.en.srt": "subtitle", "cover.jpg": "image", "theme.flac": "audio"}
    expect(tree.get_by_text("cover.jpg")).to_be_visible()
    flac = tree.locator("li.file", has_text="theme.flac")
    expect(flac).to_contain_text("3.0 MiB")
    expect(flac.get_by_role("progressbar", name="theme.flac downloaded")).to_have_attribute("aria-valuenow", "0")
    expect(tree.locator("li.file", has_text="cover.jpg")).to_contain_text("Complete")
    expect(tree.get_by_role("button", name="Delete cover.jpg")).to_be_visible()  # the per-file Delete stays
    expect(tree.get_by_role("link", name="Download cover.jpg")).to_be_visible()
    # Deep folders start collapsed: open them one by one down to Scenes, then open Scenes as the root.
    for folder in ("Behind", "Scenes"):
        tree.locator("summary", has_text=folder).first.click()
    for name, kind in kinds.items():
        expect(tree.locator("li.file", has_text=name).locator("svg[data-kind]")).to_have_attribute("data-kind", kind)
    assert not re.search("[\U0001F300-\U0001FAFF]", tree.inner_text())
    for folder in ("Nested Season", "Extras", "Behind"):
        tree.get_by_role("button", name=f"Open folder {folder}").click()
    crumbs = page.get_by_role("navigation", name="Folder path")
    expect(crumbs.get_by_role("listitem")).to_have_text(["All files", "Nested Season", "Extras", "Behind"])
    expect(crumbs.locator("[aria-current=location]")).to_have_text("Behind")
    expect(tree.get_by_text("cover.jpg")).to_have_count(0)
    expect(tree.get_by_text("making-of.mkv")).to_be_visible()
    expect(tree.get_by_role("link", name="Download folder Scenes as zip")).to_be_attached()
    crumbs.get_by_role("button", name="Extras").click()
    expect(crumbs.get_by_role("listitem")).to_have_text(["All files", "Nested Season", "Extras"])
    crumbs.get_by_role("button", name="All files").click()
    expect(crumbs).to_be_hidden()
    expect(tree.get_by_text("cover.jpg")).to_be_visible()

    # The piece map from the files' completion: 5 MiB of 8 MiB complete → 40 of 64 blocks.
    piece_map = page.get_by_role("img", name=re.compile("^Piece map"))
    expect(piece_map).to_have_attribute("aria-label", "Piece map: 40 of 64 blocks complete")
    expect(piece_map.locator('span[data-done="1"]')).to_have_count(40)

    # The speed sparkline from the job's progress events; a live one adds a point.
    speed = page.locator("#speed-chart")
    expect(speed).to_have_attribute("data-points", "4")
    expect(speed.locator("canvas")).to_have_count(1)
    expect(speed).to_have_attribute("aria-label", re.compile(r"now 390\.6 KiB/s down"))
    wait_live(page)
    events.emit(job, EventKind.PROGRESS, Status.DOWNLOADING,
                {"status": "downloading", "progress": 0.9, "download_rate": 512_000, "upload_rate": 0})
    expect(speed).to_have_attribute("data-points", "5")
    expect(speed).to_have_attribute("aria-label", re.compile(r"now 500\.0 KiB/s down"))
    assert page.js_errors == []


def test_usage_charts_drawn_from_metering_rows_and_jobs(page: Page, live_server_url):
    user = UserFactory(email="metered@example.com")
    today = timezone.now().date()
    UsageDay.objects.create(user=user, day=today.replace(day=1), bytes_downloaded=40 * MIB, bytes_delivered=8 * MIB)
    if today.day > 1:
        UsageDay.objects.create(user=user, day=today, bytes_downloaded=12 * MIB)
    UsageDay.objects.create(user=user, day=today.replace(day=1) - dt.timedelta(days=2), bytes_downloaded=99 * MIB)
    for n in range(3):
        JobFactory(user=user, name=f"Stored {n}", status=Status.COMPLETED, size_bytes=(n + 1) * MIB)
    log_in(page, user.email)
    page.goto("/usage/")
    transfer = page.locator("#transfer-chart")
    expect(transfer.locator("canvas")).to_have_count(1)
    expect(transfer).to_have_attribute("data-points", str(today.day))
    expect(transfer.locator(".skeleton")).to_have_count(0)
    storage = page.locator("#storage-chart")
    expect(storage.locator("canvas")).to_have_count(1)
    expect(storage).to_have_attribute("data-points", "3")
    # What is drawn is the rows': hovering the first slot shows its figures in the chart's legend.
    transfer.locator(".u-over").hover(position={"x": 3, "y": 20})
    expect(transfer.locator(".u-legend")).to_contain_text("40.0 MiB")
    expect(transfer.locator(".u-legend")).to_contain_text("8.0 MiB")
    storage.locator(".u-over").hover(position={"x": 3, "y": 20})
    expect(storage.locator(".u-legend")).to_contain_text("Stored 2")
    expect(storage.locator(".u-legend")).to_contain_text("3.0 MiB")
    assert page.js_errors == []


def test_plans_page_sends_an_upgrade_request_with_a_toast(page: Page, live_server_url):
    user = UserFactory(email="climber@example.com")
    PlanFactory(name="Platinum", max_storage_bytes=0)
    log_in(page, user.email)
    page.get_by_role("link", name="Compare plans and upgrade").click()
    page.wait_for_url(f"{live_server_url}/plans/")
    platinum = page.get_by_role("article", name="Platinum")
    expect(platinum).to_contain_text("Unlimited")
    platinum.get_by_role("button", name="Request the Platinum plan").click()
    expect(page.locator("#toasts").get_by_role("status")).to_contain_text(
        "Request sent: an operator will move you to the Platinum plan.")
    expect(page.get_by_role("article", name="Platinum")).to_contain_text("Requested: waiting for an operator")
    assert UpgradeRequest.objects.get().plan.name == "Platinum"
    assert page.js_errors == []
