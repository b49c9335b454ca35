"""The Audiobooks page's tracker state in real Chromium against real daphne: the user's tracker account (ratio,
class, unsatisfied n / limit, session), a book's seeding time and both clocks, and an alert the compliance sweep
raises appearing by the page's own refresh, without a reload; the page passes axe with all of it shown. On the
job page, the alert panel follows the sweep live (the job's events): shown when raised, hidden when cleared."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from audiobooks import services
from audiobooks.compliance import alerts
from audiobooks.compliance.models import SeedingLedger
from downloads.models import Status
from indexers.models import Indexer, JobSource
from tests.accounts.factories import UserFactory
from tests.audiobooks.presets import ensure_mam_rules
from tests.browser.conftest import log_in
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_dashboard import wait_live
from tests.downloads.factories import JobFactory
from tests.indexers.factories import IndexerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_tracker_state_and_a_new_alert_show_live(page: Page, live_server_url):
    ensure_mam_rules()
    user = UserFactory(email="reader@example.com")
    indexer = IndexerFactory(owner=user, name="My MAM", kind="myanonamouse", url="http://127.0.0.1:9",
                             account_status={"ratio": 2.5, "class": "Power User", "unsatisfied": 3,
                                             "unsatisfied_limit": 10})
    job = JobFactory(user=user, name="Project Hail Mary", backend="server:999", status=Status.COMPLETED)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name="MAM", title="Project Hail Mary",
                             guid="https://www.myanonamouse.net/t/123")
    now = timezone.now()
    SeedingLedger.objects.create(job=job, tracker="myanonamouse", seeded_seconds=30 * 3600, ratio=0.42,
                                 completed_at=now - dt.timedelta(days=2), seeding_seen_at=now)
    services.mark(user, job)
    services.mark(user, JobFactory(user=user, status=Status.DOWNLOADING))  # a waiting book: the page refreshes

    log_in(page, user.email)
    page.goto("/audiobooks/")
    row = page.locator("#tracker-accounts tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("My MAM")
    expect(row).to_contain_text("2.50")
    expect(row).to_contain_text("3 / 10")
    expect(row.locator("[data-field=session]")).to_have_text("not checked")
    card = page.locator(f"[data-book-id='{job.audiobook.pk}']")
    expect(card.locator("[data-field=seeded]")).to_contain_text("30 h of 72 h")
    expect(card.locator("[data-field=ratio]")).to_have_text("0.42")
    expect(card.locator("[data-field=satisfied]")).to_contain_text("no (Flotilla's clock: no; tracker: no)")
    expect(page.locator("#tracker-alerts .msg")).to_have_count(0)

    # The sweep reads 9 of 10 unsatisfied and raises the alert: the page shows it on its next refresh.
    Indexer.objects.filter(pk=indexer.pk).update(account_status={**indexer.account_status, "unsatisfied": 9})
    assert alerts.evaluate()["alerts_raised"] == 1
    expect(page.locator("#tracker-alerts .msg")).to_contain_text("9 of your 10 unsatisfied")
    expect(row).to_contain_text("9 / 10")
    assert axe_violations(page) == []
    assert page.js_errors == []


def test_a_jobs_alert_panel_follows_the_sweep_live(page: Page, live_server_url):
    ensure_mam_rules()
    user = UserFactory(email="reader@example.com")
    indexer = IndexerFactory(owner=user, name="My MAM", kind="myanonamouse", url="http://127.0.0.1:9",
                             account_status={"unsatisfied": 1, "unsatisfied_limit": 10})
    job = JobFactory(user=user, name="Project Hail Mary", backend="server:999", status=Status.COMPLETED)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name="MAM", title="Project Hail Mary",
                             guid="https://www.myanonamouse.net/t/123")
    now = timezone.now()
    ledger = SeedingLedger.objects.create(job=job, tracker="myanonamouse", seeded_seconds=3600,
                                          completed_at=now - dt.timedelta(days=2), seeding_seen_at=now)

    log_in(page, user.email)
    page.goto(f"/jobs/{job.pk}/")
    wait_live(page)
    panel = page.locator("#tracker-alerts")
    expect(panel).to_be_hidden()

    # Not seen seeding for 3 h: the sweep raises the alert, and the open page shows it without a reload.
    SeedingLedger.objects.filter(pk=ledger.pk).update(seeding_seen_at=now - dt.timedelta(hours=3))
    assert alerts.evaluate()["alerts_raised"] == 1
    expect(panel).to_be_visible()
    expect(panel.locator(".msg")).to_contain_text("hit-and-run risk")
    expect(page.locator("#event-list")).to_contain_text("Torrent inactive while unsatisfied: ")

    SeedingLedger.objects.filter(pk=ledger.pk).update(seeding_seen_at=timezone.now())  # seeding again
    assert alerts.evaluate()["alerts_cleared"] == 1
    expect(panel).to_be_hidden()
    expect(page.locator("#event-list")).to_contain_text("Torrent inactive while unsatisfied: cleared.")
    assert page.js_errors == []
