"""Tracker state on the Audiobooks page and API, the job page and the health page: each tracker book's seeding
time accrued / needed, ratio, both clocks; the user's tracker accounts (ratio, class, unsatisfied n / limit,
session, checked at); open alerts. Only the user's own: another user's accounts and alerts are not listed, their
job page is a 404; the operator's shared indexer is not shown to users."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from audiobooks import services
from audiobooks.compliance import alerts
from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerAlert
from downloads.models import EventKind, JobEvent, Status
from indexers.models import JobSource
from tests.downloads.factories import JobFactory
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db
PAGE, API, TRACKER = "/audiobooks/", "/api/v1/audiobooks/", "/api/v1/audiobooks/tracker/"


@pytest.fixture
def mam(mam, settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    return mam


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


def mam_indexer(owner, mam, **fields):
    return IndexerFactory(owner=owner, kind="myanonamouse", url=mam.base_url, request_interval=0,
                          credentials=json.dumps({"mam_id": mam.new_session()}), **fields)


def tracker_book(user, indexer, *, hours: float, tracker_ok: bool = False, ratio: float | None = None):
    job = JobFactory(user=user, name="Project Hail Mary", backend="server:999", status=Status.COMPLETED)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name="MAM", title="Project Hail Mary",
                             guid="https://www.myanonamouse.net/t/123")
    now = timezone.now()
    SeedingLedger.objects.create(job=job, tracker="myanonamouse", seeded_seconds=int(hours * 3600),
                                 completed_at=now - dt.timedelta(days=1), seeding_seen_at=now, ratio=ratio,
                                 satisfied_at=now if hours >= 72 else None,
                                 tracker_satisfied_at=now if tracker_ok else None)
    return services.mark(user, job)


def test_the_api_shows_each_books_seeding_state(api_client, user, mam):
    indexer = mam_indexer(user, mam)
    book = tracker_book(user, indexer, hours=73.5, ratio=1.25)
    plain = services.mark(user, JobFactory(user=user, status=Status.DOWNLOADING))
    rows = {row["id"]: row for row in api_client.get(API).json()["results"]}
    assert rows[plain.pk]["tracker"] is None and rows[plain.pk]["alerts"] == []
    state = rows[book.pk]["tracker"]
    assert (state["seeded_seconds"], state["needed_seconds"], state["ratio"]) == (73.5 * 3600, 72 * 3600, 1.25)
    assert state["clock_satisfied_at"] and state["tracker_satisfied_at"] is None and not state["satisfied"]
    assert state["window_ends_at"] and not state["hit_and_run"] and not state["inactive"]
    SeedingLedger.objects.filter(job_id=book.job_id).update(tracker_satisfied_at=timezone.now())
    assert api_client.get(f"{API}{book.pk}/").json()["tracker"]["satisfied"] is True


def test_tracker_accounts_after_a_sweep_and_an_expired_session(api_client, user, other_user, mam):
    mine = mam_indexer(user, mam, name="Mine")
    mam_indexer(other_user, mam, name="Theirs")
    IndexerFactory(owner=None, kind="myanonamouse", name="Operator's", url=mam.base_url)
    tracker_book(user, mine, hours=1)
    assert api_client.get(TRACKER).json()["accounts"][0]["session"] == "unknown"
    mam.unsat_count, mam.unsat_limit = 7, 20
    compliance.sweep()
    [account] = api_client.get(TRACKER).json()["accounts"]  # neither the other user's nor the operator's
    assert (account["name"], account["class"], account["unsatisfied"], account["unsatisfied_limit"]) == (
        "Mine", "Power User", 7, 20)
    assert account["ratio"] == 3.21 and account["ratio_floor"] == 1.0 and account["session"] == "ok"
    assert account["checked_at"]
    mam.expire_all()
    compliance.sweep()
    body = api_client.get(TRACKER).json()
    assert body["accounts"][0]["session"] == "expired"
    assert [a["kind"] for a in body["alerts"]] == ["session_expired"]
    assert "mam_id" not in json.dumps(body)


def test_alerts_are_listed_to_their_user_only(api_client, user, other_user, browser, mam):
    theirs = mam_indexer(other_user, mam, account_status={"ratio": 0.95})
    other_book = tracker_book(other_user, theirs, hours=1)
    mine = mam_indexer(user, mam, account_status={"unsatisfied": 20, "unsatisfied_limit": 20})
    my_book = tracker_book(user, mine, hours=1)
    SeedingLedger.objects.update(seeding_seen_at=timezone.now() - dt.timedelta(hours=3))
    alerts.evaluate()
    assert TrackerAlert.objects.open().count() == 4  # two accounts, two inactive torrents
    body = api_client.get(TRACKER).json()
    assert sorted(a["kind"] for a in body["alerts"]) == ["inactive_unsatisfied", "unsatisfied_near_limit"]
    assert {a["job"] for a in body["alerts"]} == {my_book.job_id, None}
    rows = api_client.get(API).json()["results"]
    assert [(r["id"], [a["kind"] for a in r["alerts"]]) for r in rows] == [(my_book.pk, ["inactive_unsatisfied"])]
    assert api_client.get(f"{API}{other_book.pk}/").status_code == 404

    html = browser.get(PAGE).content.decode()
    assert "Unsatisfied torrents near the limit" in html and "20 of your 20" in html
    assert "Torrent inactive while unsatisfied" in html and "0.95" not in html
    assert "Seeded (MyAnonamouse)" in html and "1 h of 72 h" in html

    job_page = browser.get(f"/jobs/{my_book.job_id}/").content.decode()
    assert 'id="tracker-alerts"' in job_page and "hit-and-run risk" in job_page
    assert browser.get(f"/jobs/{other_book.job_id}/").status_code == 404


def test_a_job_without_alerts_has_its_alert_panel_hidden(browser, user):
    job = JobFactory(user=user, status=Status.DOWNLOADING)
    page = browser.get(f"/jobs/{job.pk}/")
    assert page.status_code == 200
    panel = re.search(r'<section class="panel" id="tracker-alerts"[^>]*>', page.content.decode(), re.S).group(0)
    assert " hidden" in panel  # there for job_alerts.js to fill when an alert is raised live
    assert browser.get(f"/audiobooks/jobs/{job.pk}/alerts/").content.decode().strip() == ""


def test_a_jobs_alerts_raised_and_cleared_are_on_its_timeline_and_its_panel(browser, user, other_user, mam):
    mine = mam_indexer(user, mam, account_status={"unsatisfied": 1, "unsatisfied_limit": 20})
    book = tracker_book(user, mine, hours=1)
    SeedingLedger.objects.update(seeding_seen_at=timezone.now() - dt.timedelta(hours=3))
    alerts.evaluate()
    alerts.evaluate()  # still open: no second message
    raised = JobEvent.objects.filter(job_id=book.job_id, kind=EventKind.MESSAGE, code=alerts.RAISED)
    assert [(e.user_id, e.data["alert"]) for e in raised] == [(user.pk, "inactive_unsatisfied")]
    assert raised[0].data["text"].startswith("Torrent inactive while unsatisfied: ")
    items = browser.get(f"/audiobooks/jobs/{book.job_id}/alerts/").content.decode()
    assert 'data-alert-kind="inactive_unsatisfied"' in items and "hit-and-run risk" in items
    browser.force_login(other_user)
    assert browser.get(f"/audiobooks/jobs/{book.job_id}/alerts/").status_code == 404
    browser.force_login(user)

    SeedingLedger.objects.update(seeding_seen_at=timezone.now())  # seen seeding again: the condition ended
    alerts.evaluate()
    cleared = JobEvent.objects.filter(job_id=book.job_id, kind=EventKind.MESSAGE, code=alerts.CLEARED)
    assert [e.data["text"] for e in cleared] == ["Torrent inactive while unsatisfied: cleared."]
    assert browser.get(f"/audiobooks/jobs/{book.job_id}/alerts/").content.decode().strip() == ""
    timeline = browser.get(f"/jobs/{book.job_id}/").content.decode()
    assert "Torrent inactive while unsatisfied: cleared." in timeline


def test_the_health_page_counts_open_alerts_by_kind(admin_client, user, mam):
    mam_indexer(user, mam, account_status={"ratio": 0.5, "unsatisfied": 9, "unsatisfied_limit": 10})
    alerts.evaluate()
    TrackerAlert.objects.create(user=user, subject="job:1", kind="inactive_unsatisfied", message="gone",
                                cleared_at=timezone.now())  # cleared: not counted
    html = admin_client.get("/admin/health/").content.decode()
    assert "Open tracker alerts" in html
    for label, count in (("Ratio near the floor", 1), ("Unsatisfied torrents near the limit", 1),
                         ("Session expired", 0), ("Torrent inactive while unsatisfied", 0)):
        assert f'<td>{label}</td><td class="num">{count}</td>' in html
    assert admin_client.get("/admin/audiobooks/trackeralert/?cleared_at__isempty=1").status_code == 200
    counts = admin_client.get("/admin/health/?format=json").json()["tracker_alerts"]
    assert {row["kind"]: row["count"] for row in counts} == {
        "session_expired": 0, "ratio_near_floor": 1, "unsatisfied_near_limit": 1, "inactive_unsatisfied": 0}
