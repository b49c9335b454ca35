"""Tracker alerts, raised and cleared by the compliance sweep against the MyAnonamouse fake over real HTTP:
session expired (the fake rejects the cookie), ratio near the floor and unsatisfied count near the limit (the
fake's account data), a torrent inactive while unsatisfied (its server does not answer; cleared when the tracker
agrees it is satisfied). One open alert per (subject, kind); one mail per raise, with no secret in it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audiobooks.compliance import alerts
from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerAlert, TrackerRules
from downloads.models import Status
from indexers import services as indexers
from indexers.models import Indexer, JobSource
from tests.downloads.factories import JobFactory
from tests.indexers.factories import IndexerFactory
from tests.servers.factories import TorrentServerFactory

pytestmark = pytest.mark.django_db
Kind = TrackerAlert.Kind


@pytest.fixture(autouse=True)
def _rules(settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    TrackerRules.objects.filter(tracker="myanonamouse").update(
        min_seed_time=dt.timedelta(hours=72), satisfied_margin=dt.timedelta(hours=1), ratio_floor=1.0,
        ratio_margin=0.1, unsatisfied_margin=1, inactive_after=dt.timedelta(hours=1))


@pytest.fixture
def session(mam):
    return mam.new_session()


@pytest.fixture
def indexer(user, mam, session):
    return IndexerFactory(owner=user, name="My MAM", kind="myanonamouse", url=mam.base_url, request_interval=0,
                          credentials=json.dumps({"mam_id": session}))


def tracker_job(user, indexer, mam, *, completed_ago: dt.timedelta = dt.timedelta(minutes=5), hours: float = 1,
                backend: str | None = None, title: str = "Project Hail Mary") -> SeedingLedger:
    """A job grabbed from the fake, complete, with a ledger Flotilla's clock has seen `hours` seeding."""
    tid = mam.add(title)
    backend = backend or f"server:{TorrentServerFactory(owner=user).pk}"  # a closed port: never reports
    job = JobFactory(user=user, name=title, backend=backend, status=Status.COMPLETED, info_hash="ab" * 20)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name="MAM", title=title,
                             guid=f"https://www.myanonamouse.net/t/{tid}")
    completed = timezone.now() - completed_ago
    seconds = int(hours * 3600)
    satisfied = completed if seconds >= 72 * 3600 else None
    return SeedingLedger.objects.create(job=job, tracker="myanonamouse", seeded_seconds=seconds,
                                        completed_at=completed, satisfied_at=satisfied)


def open_alerts(kind: str | None = None):
    found = TrackerAlert.objects.open()
    return list(found.filter(kind=kind) if kind else found)


def assert_no_secret(mail, *secrets: str) -> None:
    text = mail.subject + mail.body
    for secret in secrets:
        assert secret not in text
    assert "mam_id" not in text and "passkey" not in text.lower()


def test_session_expired_is_raised_mailed_once_and_cleared_by_a_new_session(user, indexer, mam, session,
                                                                           mailoutbox):
    tracker_job(user, indexer, mam)  # an unsatisfied job: the sweep reads this account
    compliance.sweep()
    assert open_alerts() == [] and mailoutbox == []
    rotated = Indexer.objects.get(pk=indexer.pk).secrets["mam_id"]

    mam.expire_all()  # the tracker rejects the session: 403 "you are not signed in"
    result = compliance.sweep()
    [alert] = open_alerts()
    assert (alert.kind, alert.user, alert.indexer_id, alert.job_id) == (Kind.SESSION_EXPIRED, user, indexer.pk, None)
    assert result["alerts_raised"] == 1 and "My MAM" in alert.message and "expired" in alert.message
    [mail] = mailoutbox
    assert mail.to == [user.email] and "Session expired" in mail.subject and alert.message in mail.body
    assert "/audiobooks/" in mail.body
    assert_no_secret(mail, session, rotated)

    compliance.sweep()  # the condition holds: same alert, no second mail
    assert open_alerts() == [alert] and len(mailoutbox) == 1

    fresh = mam.new_session()  # the user pastes a new session into the indexer
    indexers.update_indexer(user, Indexer.objects.get(pk=indexer.pk), credentials={"mam_id": fresh})
    result = compliance.sweep()
    assert result["accounts"] == 1 and result["alerts_cleared"] == 1 and open_alerts() == []
    alert.refresh_from_db()
    assert alert.cleared_at is not None and len(mailoutbox) == 1


def test_ratio_near_the_floor_from_the_account(user, indexer, mam, session, mailoutbox):
    tracker_job(user, indexer, mam)
    mam.uploaded_bytes, mam.downloaded_bytes = 105 * 2**30, 100 * 2**30  # ratio 1.05: under 1.0 + 0.1
    compliance.sweep()
    [alert] = open_alerts(Kind.RATIO_NEAR_FLOOR)
    assert "1.05" in alert.message and "1.00" in alert.message
    [mail] = mailoutbox
    assert_no_secret(mail, session)

    mam.uploaded_bytes = 104 * 2**30  # still near: the message follows the ratio, no new alert or mail
    compliance.sweep()
    assert open_alerts(Kind.RATIO_NEAR_FLOOR)[0].message != alert.message and len(mailoutbox) == 1
    assert TrackerAlert.objects.count() == 1

    mam.uploaded_bytes = 300 * 2**30  # ratio 3.00
    compliance.sweep()
    assert open_alerts() == []
    alert.refresh_from_db()
    assert alert.cleared_at is not None


def test_unsatisfied_near_the_limit_from_the_account(user, indexer, mam, mailoutbox):
    tracker_job(user, indexer, mam)
    mam.unsat_count, mam.unsat_limit = 48, 50  # two free places: not near with a margin of 1
    compliance.sweep()
    assert open_alerts() == []
    mam.unsat_count = 49
    compliance.sweep()
    [alert] = open_alerts(Kind.UNSATISFIED_NEAR_LIMIT)
    assert "49 of your 50" in alert.message and len(mailoutbox) == 1
    mam.unsat_count = 30
    compliance.sweep()
    assert open_alerts() == [] and len(mailoutbox) == 1


def test_a_margin_of_zero_alerts_only_at_the_limit(user, indexer, mam):
    TrackerRules.objects.filter(tracker="myanonamouse").update(unsatisfied_margin=0)
    tracker_job(user, indexer, mam)
    mam.unsat_count, mam.unsat_limit = 49, 50
    compliance.sweep()
    assert open_alerts() == []
    mam.unsat_count = 50
    compliance.sweep()
    assert [a.kind for a in open_alerts()] == [Kind.UNSATISFIED_NEAR_LIMIT]


def test_inactive_while_unsatisfied_is_raised_then_cleared_when_the_tracker_agrees(user, indexer, mam, mailoutbox):
    ledger = tracker_job(user, indexer, mam, completed_ago=dt.timedelta(hours=2), hours=10)
    compliance.sweep()  # its server does not answer: the ledger does not grow
    [alert] = open_alerts()
    assert (alert.kind, alert.job_id, alert.user) == (Kind.INACTIVE_UNSATISFIED, ledger.job_id, user)
    assert "Project Hail Mary" in alert.message and "10.0 of 72 h" in alert.message
    assert "hit-and-run risk" in alert.message
    [mail] = mailoutbox
    assert f"/jobs/{ledger.job_id}/" in mail.body and "Project Hail Mary" in mail.body

    compliance.sweep()
    assert len(mailoutbox) == 1 and open_alerts() == [alert]

    # Flotilla's clock and the margin are past 72 h, and the tracker's unsatisfied list no longer has it.
    SeedingLedger.objects.filter(pk=ledger.pk).update(seeded_seconds=74 * 3600, satisfied_at=timezone.now())
    mam.snatches["unsat"] = []
    result = compliance.sweep()
    assert result["tracker"] == 1 and open_alerts() == []
    alert.refresh_from_db()
    assert alert.cleared_at is not None


def test_a_window_that_ended_unsatisfied_says_hit_and_run(user, indexer, mam):
    tracker_job(user, indexer, mam, completed_ago=dt.timedelta(days=31), hours=5)
    compliance.sweep()
    [alert] = open_alerts(Kind.INACTIVE_UNSATISFIED)
    assert "counts it as a hit and run" in alert.message


def test_a_torrent_seen_seeding_is_not_inactive(user, indexer, mam):
    rules = TrackerRules.objects.get(tracker="myanonamouse")
    ledger = tracker_job(user, indexer, mam, completed_ago=dt.timedelta(hours=3))
    now = timezone.now()
    assert ledger.inactive(rules, now)
    compliance._observe(rules, ledger, complete=True, reported=600, incarnation="x", now=now, ratio=0.5)
    ledger.refresh_from_db()
    assert ledger.seeding_seen_at == now and ledger.ratio == 0.5 and not ledger.inactive(rules, now)
    compliance._observe(rules, ledger, complete=True, reported=600, incarnation="x", now=now + dt.timedelta(hours=2))
    assert ledger.inactive(rules, now + dt.timedelta(hours=2))  # the counter stood still for 2 h: stopped
    assert not ledger.inactive(rules, now + dt.timedelta(minutes=30))


def test_one_open_alert_per_subject_and_kind(user, indexer):
    TrackerAlert.objects.create(user=user, indexer=indexer, subject=f"indexer:{indexer.pk}",
                                kind=Kind.SESSION_EXPIRED, message="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrackerAlert.objects.create(user=user, indexer=indexer, subject=f"indexer:{indexer.pk}",
                                    kind=Kind.SESSION_EXPIRED, message="y")
    TrackerAlert.objects.update(cleared_at=timezone.now())  # a cleared one does not block a new raise
    TrackerAlert.objects.create(user=user, indexer=indexer, subject=f"indexer:{indexer.pk}",
                                kind=Kind.SESSION_EXPIRED, message="z")


def test_a_failed_mail_is_sent_by_the_next_sweep(user, indexer, mam, mailoutbox, monkeypatch):
    tracker_job(user, indexer, mam)
    mam.unsat_count, mam.unsat_limit = 50, 50

    def refuse(*args, **kwargs):
        raise OSError("mail server down")

    monkeypatch.setattr(alerts, "send_mail", refuse)
    compliance.sweep()
    [alert] = open_alerts()
    assert alert.emailed_at is None and mailoutbox == []
    monkeypatch.undo()
    compliance.sweep()
    alert.refresh_from_db()
    assert alert.emailed_at is not None and len(mailoutbox) == 1


def test_an_operators_shared_indexer_is_alerted_on_the_health_page_only(mam, session, mailoutbox):
    shared = IndexerFactory(owner=None, kind="myanonamouse", url=mam.base_url, request_interval=0,
                            credentials=json.dumps({"mam_id": session}),
                            account_status={"ratio": 0.9, "unsatisfied": 1, "unsatisfied_limit": 50})
    alerts.evaluate()
    [alert] = open_alerts()
    assert (alert.kind, alert.user, alert.indexer_id) == (Kind.RATIO_NEAR_FLOOR, None, shared.pk)
    assert mailoutbox == []
