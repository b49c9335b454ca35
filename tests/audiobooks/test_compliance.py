"""Tracker compliance without a client: the MyAnonamouse preset, the seeding ledger's arithmetic across client
restarts and counter resets, approved clients and versions, the ratio guard, refusals on a non-approved
backend (a server's version, the built-in engine), and the operator's audited edit."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from accounts.models import AuditLog
from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerRules
from downloads import dispatch
from downloads import services as jobs
from downloads.engine import claims
from downloads.models import Job, Status
from indexers.models import JobSource, SearchResult
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.fakes.mam_fake import sample_torrent
from tests.indexers.factories import IndexerFactory
from tests.servers.factories import TorrentServerFactory


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10)).plan


@pytest.fixture
def mam_rules(db):
    return TrackerRules.objects.get(tracker="myanonamouse")


def mam_job(user, backend: str, *, name: str = "Book", flags=(), size: int = 2**30, account=None):
    """A queued job grabbed from a MyAnonamouse indexer (its account as the last check read it)."""
    indexer = IndexerFactory(owner=user, kind="myanonamouse", credentials=json.dumps({"mam_id": "x"}),
                             account_status=account if account is not None else
                             {"unsatisfied": 0, "unsatisfied_limit": 50, "uploaded_bytes": 100 * 2**30,
                              "downloaded_bytes": 10 * 2**30})
    job = jobs.add_torrent(user, sample_torrent(name), backend=backend)
    Job.objects.filter(pk=job.pk).update(size_bytes=size)  # as if the torrent were that big
    job.size_bytes = size
    result = SearchResult.objects.create(user=user, indexer=indexer, guid=name, title=name, size=size,
                                         flags=list(flags), expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(1))
    JobSource.objects.create(job=job, indexer=indexer, result=result, indexer_name=indexer.name, guid=name,
                             title=name)
    return job


def test_myanonamouse_preset_is_shipped_by_the_migration(mam_rules):
    assert (mam_rules.min_seed_time, mam_rules.seed_window, mam_rules.ratio_floor) == (
        dt.timedelta(hours=72), dt.timedelta(days=30), 1.0)
    assert not mam_rules.partial_downloads and not mam_rules.engine_allowed and mam_rules.keep_seeding
    assert set(mam_rules.approved_clients) >= {"transmission", "qbittorrent", "rtorrent"}
    assert "limit" not in {f.name for f in TrackerRules._meta.fields}  # the unsatisfied limit is the account's


def test_ledger_adds_deltas_and_never_loses_time_across_restarts_and_resets():
    ledger = SeedingLedger(seeded_seconds=0)
    assert compliance.accrue(ledger, 100, "server:1@1000") == 100  # first sight: all it reports since added
    assert compliance.accrue(ledger, 160, "server:1@1000") == 60
    assert compliance.accrue(ledger, 150, "server:1@1000") == 0  # killed before it saved: a new base
    assert compliance.accrue(ledger, 175, "server:1@1000") == 25  # the real seeding after the restart counts
    assert compliance.accrue(ledger, 30, "server:1@2000") == 30  # added again: its counter restarted at 0
    assert compliance.accrue(ledger, 30, "server:1@2000") == 0
    assert ledger.seeded_seconds == 215 and ledger.reported_seconds == 30


@pytest.mark.parametrize(("kind", "version", "allowed"), [
    ("transmission", "Transmission 3.00 (bb6b5a062e)", True),
    ("transmission", "Transmission 4.0.5", True),
    ("transmission", "Transmission 2.84", False),
    ("qbittorrent", "qBittorrent v4.5.2", True),
    ("qbittorrent", "qBittorrent v4.3.8", False),
    ("qbittorrent", "qBittorrent v5.0.0", False),  # named as not allowed; 5.0.1 is
    ("qbittorrent", "qBittorrent v5.0.1", True),
    ("rtorrent", "rTorrent 0.9.8 / libtorrent 0.13.8", True),
    ("utorrent", "µTorrent 3.5", False),
    ("transmission", "", False),
])
def test_approved_clients_and_minimum_versions(mam_rules, kind, version, allowed):
    assert (compliance.client_allowed(mam_rules, kind, version) is None) is allowed


@pytest.mark.django_db
def test_job_on_a_server_with_a_client_version_the_tracker_refuses_fails_with_the_reason(user, plan):
    server = TorrentServerFactory(owner=user, type="transmission", client_version="Transmission 2.84")
    job = mam_job(user, server.backend_name)
    assert dispatch.dispatch_queued() == 0
    job.refresh_from_db()
    assert (job.status, job.reason_code) == (Status.FAILED, compliance.CLIENT_NOT_APPROVED)
    assert "Transmission 2.84" in job.reason and "2.94 or later" in job.reason


@pytest.mark.django_db
def test_engine_is_refused_for_myanonamouse_unless_the_operator_allows_it(user, plan, mam_rules):
    refused = mam_job(user, "engine", name="Refused")
    assert claims.claim_queued("engine-test", 5) == []
    refused.refresh_from_db()
    assert (refused.status, refused.reason_code) == (Status.FAILED, compliance.CLIENT_NOT_APPROVED)
    assert "built-in engine" in refused.reason

    compliance.update_rules(None, mam_rules, engine_allowed=True)
    allowed = mam_job(user, "engine", name="Allowed")
    assert [j.pk for j in claims.claim_queued("engine-test", 5)] == [allowed.pk]


@pytest.mark.django_db
def test_other_jobs_are_not_governed(user, plan):
    public = jobs.add_magnet(user, "magnet:?xt=urn:btih:" + "ab" * 20, backend="engine")
    assert compliance.start_verdict(public) is None
    torznab = jobs.add_torrent(user, sample_torrent("Other"), backend="engine")
    JobSource.objects.create(job=torznab, indexer=IndexerFactory(owner=user), indexer_name="t", guid="g", title="t")
    assert compliance.start_verdict(torznab) is None


@pytest.mark.django_db
def test_ratio_guard_waits_unless_freeleech_or_vip(user, plan):
    server = TorrentServerFactory(owner=user, type="transmission", client_version="Transmission 3.00")
    low = {"unsatisfied": 0, "unsatisfied_limit": 50, "uploaded_bytes": 11 * 2**30, "downloaded_bytes": 10 * 2**30}
    big = mam_job(user, server.backend_name, name="Big", size=2 * 2**30, account=low)
    verdict = compliance.start_verdict(big)
    assert verdict is not None and verdict.code == compliance.RATIO_GUARD and "0.92" in verdict.message
    small = mam_job(user, server.backend_name, name="Small", size=2**29, account=low)
    assert compliance.start_verdict(small) is None  # 11 / 10.5 stays above 1.0
    for flag in ("freeleech", "vip"):
        free = mam_job(user, server.backend_name, name=f"Free {flag}", size=2 * 2**30, account=low, flags=[flag])
        assert compliance.start_verdict(free) is None


@pytest.mark.django_db
def test_unknown_limit_waits_rather_than_guessing(user, plan):
    server = TorrentServerFactory(owner=user, type="transmission", client_version="Transmission 3.00")
    job = mam_job(user, server.backend_name, account={})
    verdict = compliance.start_verdict(job)
    assert verdict is not None and verdict.code == compliance.UNSAT_LIMIT and "limit" in verdict.message


@pytest.mark.django_db
def test_operator_edits_rules_in_the_admin_audited(admin_client, mam_rules):
    url = f"/admin/audiobooks/trackerrules/{mam_rules.pk}/change/"
    assert admin_client.get(url).status_code == 200
    form = {"tracker": "myanonamouse", "name": "MyAnonamouse", "enabled": "on", "min_seed_time": "3 00:00:00",
            "seed_window": "30 00:00:00", "satisfied_margin": "01:00:00", "ratio_floor": "1.5",
            "upload_buffer_bytes": "0", "approved_clients": json.dumps(mam_rules.approved_clients),
            "keep_seeding": "on", "ratio_margin": "0.1", "unsatisfied_margin": "1", "inactive_after": "01:00:00"}
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    mam_rules.refresh_from_db()
    assert mam_rules.ratio_floor == 1.5
    audit = AuditLog.objects.get(action="tracker_rules.update")
    assert "ratio_floor" in audit.metadata["fields"]
    assert admin_client.get("/admin/audiobooks/seedingledger/").status_code == 200
