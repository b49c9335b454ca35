"""Every page passes axe-core inside Chromium (0 serious or critical violations), on a desktop and a phone
viewport, in the dark and the light theme; the same walk takes the README's screenshots.

axe-core is vendored for the tests (tests/browser/vendor/axe-core/, from `npm pack axe-core`) and injected
into each page. `make screenshots` runs this module with SCREENSHOTS_DIR=docs/screenshots.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import UsageDay
from downloads import events
from downloads.models import EventKind, Status
from streaming import shares
from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import log_in
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
THEMES = ("dark", "light")
MIB = 1024**2
GIB = 1024**3
# WCAG 2.1 A/AA plus axe's best practices; only serious and critical findings fail the test.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}
FAILING = {"serious", "critical"}


def axe_violations(page: Page) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("options => window.axe.run(document, options)", AXE_OPTIONS)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["target"][0] for n in v["nodes"][:5])
        for v in result["violations"] if v["impact"] in FAILING
    ]


def shoot(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)


def _a_full_account():
    """A user with a plan, jobs in every kind of state, files three folders deep, speed samples and metering."""
    user = UserFactory(email="ada@example.com")
    PlanAssignmentFactory(user=user, plan=PlanFactory(name="Pro", max_storage_bytes=200 * GIB,
                                                      monthly_transfer_bytes=1024 * GIB, max_active_jobs=5))
    PlanFactory(name="Team", max_storage_bytes=0, monthly_transfer_bytes=0, max_active_jobs=20)
    JobFactory(user=user, name="Debian 12.5 netinst", status=Status.QUEUED, size_bytes=658 * MIB)
    JobFactory(user=user, name="Big Buck Bunny (2008) 1080p", status=Status.DOWNLOADING, size_bytes=3 * GIB,
               downloaded_bytes=int(1.9 * GIB), progress=0.63, download_rate=7_400_000, upload_rate=420_000,
               eta_seconds=151, peers=23, seeds=11)
    JobFactory(user=user, name="Internet Archive — Night of the Living Dead", status=Status.FAILED,
               reason_code="stalled", reason="No seeders for 30 minutes.", size_bytes=900 * MIB)
    JobFactory(user=user, name="Ubuntu 24.04 desktop", status=Status.SEEDING, size_bytes=int(5.7 * GIB),
               downloaded_bytes=int(5.7 * GIB), progress=1, upload_rate=1_200_000, peers=8)
    job = JobFactory(user=user, name="Sintel (2010) — complete", status=Status.COMPLETED, size_bytes=9 * MIB,
                     downloaded_bytes=9 * MIB, progress=1)
    JobFileFactory(job=job, path="Sintel/Extras/Making of/Interviews/director.mkv", size_bytes=4 * MIB,
                   completed_bytes=4 * MIB, mime_type="video/x-matroska")
    JobFileFactory(job=job, path="Sintel/Extras/Making of/Interviews/director.en.srt", size_bytes=MIB,
                   completed_bytes=MIB, mime_type="application/x-subrip")
    JobFileFactory(job=job, path="Sintel/poster.jpg", size_bytes=MIB, completed_bytes=MIB, mime_type="image/jpeg")
    JobFileFactory(job=job, path="Sintel/soundtrack.flac", size_bytes=2 * MIB, completed_bytes=2 * MIB,
                   mime_type="audio/flac")
    JobFileFactory(job=job, path="Sintel/sintel.zip", size_bytes=MIB, completed_bytes=MIB, mime_type="application/zip")
    for n, rate in enumerate((1_200_000, 3_400_000, 5_100_000, 4_600_000, 6_800_000, 7_400_000)):
        events.emit(job, EventKind.PROGRESS, Status.DOWNLOADING,
                    {"status": "downloading", "progress": n / 6, "download_rate": rate, "upload_rate": rate // 8})
    today = timezone.now().date()
    for day in range(1, today.day + 1):
        UsageDay.objects.create(user=user, day=today.replace(day=day), jobs_created=day % 4,
                                bytes_downloaded=(day * 7919 % 13 + 1) * 700 * MIB,
                                bytes_delivered=(day * 104729 % 7) * 300 * MIB)
    return user, job


def _settle(page: Page, *, signed_in: bool) -> None:
    if signed_in:
        expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    page.evaluate("document.fonts.ready")


def test_every_page_passes_axe_on_desktop_and_phone_in_both_themes(page: Page, live_server_url):
    user, job = _a_full_account()
    pages = {
        "downloads": "/",
        "job": f"/jobs/{job.pk}/",
        "player": f"/d/play/{job.pk}/",
        "usage": "/usage/",
        "plans": "/plans/",
        "servers": "/servers/",
        "seedr": "/seedr/",
        "api-keys": "/accounts/api-keys/",
        "search": "/search/",
        "indexers": "/indexers/",
        "audiobooks": "/audiobooks/",
        "failover": "/failover/",
        "qbittorrent": "/qbittorrent/",
    }
    # What a visitor without an account sees: a live share link of the job's files, a revoked one (410) and an
    # unknown one (404).
    live = shares.create_share(user, job_id=job.pk)
    revoked = shares.revoke_share(user, shares.create_share(user, job_id=job.pk).pk)
    public = [("login", "/accounts/login/", 200), ("password-reset", "/accounts/password/reset/", 200),
              ("register", "/accounts/register/", 200), ("share", shares.share_url(live), 200),
              ("share-revoked", shares.share_url(revoked), 410), ("share-unknown", "/s/" + "0" * 40 + "/", 404)]
    problems: dict[str, list[str]] = {}

    # Signed out first: the login and password-reset pages, and the share pages.
    for theme in THEMES:
        page.emulate_media(color_scheme=theme)
        for size, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            for name, url, status in public:
                response = page.goto(url)
                assert response.status == status, url
                _settle(page, signed_in=False)
                if name == "share":
                    expect(page.get_by_role("link", name="Download", exact=True)).to_have_count(5)
                problems[f"{name} {size} {theme}"] = axe_violations(page)
                if theme == "dark" and name == "login":
                    shoot(page, f"{name}-{size}")

    page.emulate_media(color_scheme="dark")
    page.set_viewport_size(VIEWPORTS["desktop"])
    log_in(page, user.email)
    for theme in THEMES:
        page.emulate_media(color_scheme=theme)
        for size, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            for name, url in pages.items():
                response = page.goto(url)
                assert response.status == 200, url
                _settle(page, signed_in=True)
                if name == "job":
                    expect(page.locator("#speed-chart canvas")).to_have_count(1)
                    expect(page.locator("#file-tree")).not_to_have_attribute("aria-busy", "true")
                    # Play for video and audio files only (the tree draws it from the files API's play_url).
                    expect(page.get_by_role("link", name="Play soundtrack.flac")).to_be_visible()
                    expect(page.get_by_role("link", name="Play poster.jpg")).to_have_count(0)
                if name == "usage":
                    expect(page.locator("#transfer-chart canvas")).to_have_count(1)
                    expect(page.locator("#storage-chart canvas")).to_have_count(1)
                problems[f"{name} {size} {theme}"] = axe_violations(page)
                if theme == "dark" or (name == "downloads" and size == "desktop"):
                    shoot(page, f"{name}-{size}" + ("-light" if theme == "light" else ""))
            # The states a page can be in: the Add dialog open, and (phone) the navigation drawer open.
            page.goto("/")
            _settle(page, signed_in=True)
            page.keyboard.press("a")
            expect(page.get_by_role("dialog", name="Add download")).to_be_visible()
            problems[f"add dialog {size} {theme}"] = axe_violations(page)
            page.keyboard.press("Escape")
            if size == "phone":
                page.get_by_role("button", name="Open navigation").click()
                expect(page.get_by_role("navigation", name="Main")).to_be_visible()
                problems[f"drawer {size} {theme}"] = axe_violations(page)
                if theme == "dark":
                    shoot(page, "drawer-phone")

    assert len(problems) == 2 * 2 * len(public) + 2 * 2 * (len(pages) + 1) + 2
    assert {where: found for where, found in problems.items() if found} == {}
    assert page.js_errors == []
