"""Tracker compliance on the built-in engine (an operator allowed it for MyAnonamouse): a real `runengine`
process keeps a tracker torrent seeding although the plan asks for no seeding, reports libtorrent's seeding
time in its heartbeat, and the ledger accrues it: satisfied by Flotilla's clock, and still growing after the
engine was stopped and started again (the counter comes back from the resume data; only growth counts)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from audiobooks import services as books
from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerRules
from billing.services import current_plan
from downloads import heartbeats, leases, runs
from downloads import services as jobs
from downloads.engine import claims
from downloads.models import Job, Status
from downloads.swarm import make_torrent
from indexers.models import JobSource
from tests import procs
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.e2e.conftest import wait_for
from tests.indexers.factories import IndexerFactory

ACCOUNT = {"unsatisfied": 0, "unsatisfied_limit": 10, "uploaded_bytes": 10 * 2**30, "downloaded_bytes": 2**30}


def mam_job(user, job: Job) -> Job:
    indexer = IndexerFactory(owner=user, kind="myanonamouse", account_status=ACCOUNT,
                             credentials=json.dumps({"mam_id": "x"}))
    JobSource.objects.create(job=job, indexer=indexer, indexer_name=indexer.name, guid=job.name, title=job.name)
    return job


def ledger(job: Job) -> SeedingLedger:
    return SeedingLedger.objects.get(job=job)


@pytest.mark.django_db
def test_the_engines_counters_are_read_from_its_heartbeat(user):
    on_engine = mam_job(user, JobFactory(user=user, backend="engine", status=Status.SEEDING, claimed_by="e1"))
    elsewhere = mam_job(user, JobFactory(user=user, backend="engine", status=Status.SEEDING, claimed_by="e2"))
    odd = mam_job(user, JobFactory(user=user, backend="engine", status=Status.SEEDING, claimed_by="e1"))
    unclaimed = mam_job(user, JobFactory(user=user, backend="engine", status=Status.QUEUED))
    heartbeats.beat("engine", name="e1", seeding_seconds={str(on_engine.pk): 42, str(odd.pk): "42"})
    heartbeats.beat("engine", name="e2", torrents=1)  # an engine from before the counters: nothing to read
    assert compliance.engine_counters([on_engine, elsewhere, odd, unclaimed]) == {on_engine.pk: 42}


@pytest.mark.django_db
def test_an_engine_counter_that_went_back_is_a_new_base(user):
    TrackerRules.objects.filter(tracker="myanonamouse").update(engine_allowed=True)
    job = mam_job(user, JobFactory(user=user, backend="engine", status=Status.SEEDING, claimed_by="e1"))
    for seconds in (10, 25, 4, 9):  # 4: the engine lost its resume data and started again at 0
        heartbeats.beat("engine", name="e1", seeding_seconds={str(job.pk): seconds})
        compliance.sync_ledgers()
    assert (ledger(job).seeded_seconds, ledger(job).reported_seconds) == (25 + 5, 9)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_engine_seeding_time_accrues_and_survives_an_engine_restart(user, tmp_path, swarm):
    TrackerRules.objects.filter(tracker="myanonamouse").update(
        engine_allowed=True, min_seed_time=dt.timedelta(seconds=3), satisfied_margin=dt.timedelta(0))
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes, plan.max_active_jobs = 0, 0, 10  # "no seeding needed"
    plan.save()
    folder = swarm.payload_dir / "Engine Book"
    folder.mkdir(parents=True)
    (folder / "01.mp3").write_bytes(os.urandom(256 * 1024))
    torrent = make_torrent(folder, [swarm.tracker.announce_url], private=True)
    swarm.seeder.add(torrent, swarm.payload_dir)
    job = mam_job(user, jobs.add_torrent(user, torrent, backend="engine"))

    env = procs.process_env(tmp_path, **procs.ENGINE_ENV)
    with procs.engine(env, tmp_path):
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.SEEDING, "the engine seeds the book", 60)
        wait_for(lambda: (compliance.sync_ledgers(), SeedingLedger.objects.filter(
            job=job, satisfied_at__isnull=False).exists())[1], "3 s of seeding in the ledger", 30)
    assert Job.objects.get(pk=job.pk).status == Status.SEEDING  # the plan's "no seeding" did not stop it
    before = ledger(job).seeded_seconds

    with procs.engine(env, tmp_path):  # the same engine again, from its resume data
        wait_for(lambda: (compliance.sync_ledgers(), ledger(job).seeded_seconds >= before + 2)[1],
                 "seeding time accrued after the engine's restart", 30)
    assert Job.objects.get(pk=job.pk).status == Status.SEEDING
    assert ledger(job).completed_at is not None and ledger(job).satisfied_at is not None  # Flotilla's clock


@pytest.mark.django_db
@pytest.mark.parametrize("keep_seeding", [False, True])
def test_an_engine_job_leaves_the_engine_by_policy_once_both_clocks_agree(user, keep_seeding):
    TrackerRules.objects.filter(tracker="myanonamouse").update(
        engine_allowed=True, keep_seeding=keep_seeding, min_seed_time=dt.timedelta(seconds=3),
        satisfied_margin=dt.timedelta(0))
    job = mam_job(user, JobFactory(user=user, backend="engine", status=Status.SEEDING, claimed_by="e1"))
    book = job.data_dir / "Book" / "01.mp3"
    book.parent.mkdir(parents=True)
    book.write_bytes(b"id3" * 100)
    JobFileFactory(job=job, path="Book/01.mp3", size_bytes=300)
    heartbeats.beat("engine", name="e1", seeding_seconds={str(job.pk): 10})

    compliance.sync_ledgers()
    assert ledger(job).satisfied_at is not None and Job.objects.get(pk=job.pk).status == Status.SEEDING, (
        "Flotilla's clock alone: the tracker has not agreed yet")
    SeedingLedger.objects.filter(job=job).update(tracker_satisfied_at=timezone.now())  # what check_snatches sets
    compliance.sync_ledgers()
    compliance.sync_ledgers()  # the next sweep changes nothing

    job.refresh_from_db()
    releases = AuditLog.objects.filter(action="tracker.release", target_id=str(job.pk))
    if keep_seeding:  # the default: it seeds on
        assert job.status == Status.SEEDING and ledger(job).released_at is None and not releases.exists()
        return
    assert (job.status, job.reason_code) == (Status.COMPLETED, "tracker_released")
    assert ledger(job).released_at is not None and releases.count() == 1
    assert book.exists(), "the files stay: only the seeding ends"
    assert job.claimed_by == "e1" and job.pk not in {j.pk for j in claims.owned_by("e1")}, (
        "the engine no longer holds it: its next reconcile takes the torrent out of the session")


@pytest.mark.django_db
def test_an_engine_job_whose_book_is_being_made_is_released_after(user):
    TrackerRules.objects.filter(tracker="myanonamouse").update(
        engine_allowed=True, keep_seeding=False, min_seed_time=dt.timedelta(seconds=3),
        satisfied_margin=dt.timedelta(0))
    job = mam_job(user, JobFactory(user=user, backend="engine", status=Status.SEEDING, claimed_by="e1"))
    heartbeats.beat("engine", name="e1", seeding_seconds={str(job.pk): 10})
    compliance.sync_ledgers()
    SeedingLedger.objects.filter(job=job).update(tracker_satisfied_at=timezone.now())
    book_run = runs.reserve(books.LEASE, job.pk)  # a worker makes its book from the seeding files

    compliance.sync_ledgers()
    assert Job.objects.get(pk=job.pk).status == Status.SEEDING and ledger(job).released_at is None
    leases.release(runs.lease_name(books.LEASE, job.pk), book_run)
    compliance.sync_ledgers()
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED and ledger(job).released_at is not None
