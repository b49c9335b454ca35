"""Which jobs an engine takes: plan slots, one copy of a torrent per session, dead engines' jobs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from billing.services import current_plan
from downloads import dispatch
from downloads.engine import claims
from downloads.models import Job, JobEvent, ProcessHeartbeat, Status
from tests.downloads.factories import JobFactory

pytestmark = pytest.mark.django_db


def beat(name: str, age_seconds: float = 0) -> None:
    ProcessHeartbeat.objects.update_or_create(
        name=name, defaults={"kind": "engine", "last_seen": timezone.now() - dt.timedelta(seconds=age_seconds)}
    )


def test_claims_oldest_first_and_marks_the_engine(user):
    jobs = [JobFactory(user=user) for _ in range(3)]
    claimed = claims.claim_queued("e1", 2)
    assert [job.pk for job in claimed] == [jobs[0].pk, jobs[1].pk]
    jobs[0].refresh_from_db()
    assert jobs[0].status == Status.STARTING and jobs[0].claimed_by == "e1" and jobs[0].claimed_at
    assert Job.objects.get(pk=jobs[2].pk).status == Status.QUEUED


def test_a_job_already_claimed_is_not_claimed_again(user):
    job = JobFactory(user=user)
    stale_copy = Job.objects.get(pk=job.pk)
    assert [claimed.pk for claimed in claims.claim_queued("e1", 5)] == [job.pk]
    # A second engine that read the row before the first claimed it loses the conditional update.
    from downloads import services

    with pytest.raises(services.StaleJob):
        services.change_status(stale_copy, Status.STARTING, claimed_by="e2")
    assert Job.objects.get(pk=job.pk).claimed_by == "e1"
    assert claims.claim_queued("e2", 5) == []


def test_plan_slots_are_respected_and_the_wait_is_explained(user, other_user):
    plan = current_plan(user)
    plan.max_active_jobs = 1
    plan.save()
    first, second = JobFactory(user=user), JobFactory(user=user)
    claimed = claims.claim_queued("e1", 10)
    assert [job.pk for job in claimed] == [first.pk]
    second.refresh_from_db()
    assert second.status == Status.QUEUED and second.reason_code == dispatch.WAITING_FOR_SLOT


def test_a_torrent_already_in_the_session_waits(user, other_user):
    mine = JobFactory(user=user)
    theirs = JobFactory(user=other_user, info_hash=mine.info_hash, info_hash_hmac=mine.info_hash_hmac)
    claimed = claims.claim_queued("e1", 10, busy_hashes=frozenset({mine.info_hash_hmac}))
    assert claimed == []
    theirs.refresh_from_db()
    assert theirs.reason_code == claims.SAME_TORRENT_RUNNING


def test_two_jobs_of_one_torrent_are_not_claimed_in_one_pass(user, other_user):
    mine = JobFactory(user=user)
    JobFactory(user=other_user, info_hash=mine.info_hash, info_hash_hmac=mine.info_hash_hmac)
    assert [job.pk for job in claims.claim_queued("e1", 10)] == [mine.pk]


def test_jobs_in_backoff_are_not_claimed(user):
    JobFactory(user=user, next_attempt_at=timezone.now() + dt.timedelta(minutes=5))
    assert claims.claim_queued("e1", 10) == []


def test_only_engine_jobs_are_claimed(user):
    JobFactory(user=user, backend="seedr")
    assert claims.claim_queued("e1", 10) == []


def test_jobs_of_a_silent_engine_are_requeued_and_paused_ones_released(user, settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT = 60
    beat("dead", age_seconds=120)
    beat("alive")
    running = JobFactory(user=user, status=Status.DOWNLOADING, claimed_by="dead")
    paused = JobFactory(user=user, status=Status.PAUSED, claimed_by="dead")
    healthy = JobFactory(user=user, status=Status.DOWNLOADING, claimed_by="alive")
    never_beat = JobFactory(user=user, status=Status.SEEDING, claimed_by="ghost")

    assert claims.requeue_orphans("me") == 3

    running.refresh_from_db(), paused.refresh_from_db(), healthy.refresh_from_db(), never_beat.refresh_from_db()
    assert running.status == Status.QUEUED and running.claimed_by == "" and running.reason_code == claims.ENGINE_LOST
    assert paused.status == Status.PAUSED and paused.claimed_by == ""
    assert healthy.claimed_by == "alive" and healthy.status == Status.DOWNLOADING
    assert never_beat.status == Status.QUEUED
    event = JobEvent.objects.filter(job_id=running.pk, code="queued").get()
    assert event.data["engine"] == "dead"


def test_an_engine_never_requeues_its_own_jobs(user):
    mine = JobFactory(user=user, status=Status.DOWNLOADING, claimed_by="me")  # no heartbeat row yet
    assert claims.requeue_orphans("me") == 0
    assert Job.objects.get(pk=mine.pk).claimed_by == "me"


def test_a_job_in_a_step_that_cannot_requeue_is_left_alone(user):
    stuck = JobFactory(user=user, status=Status.PROCESSING, claimed_by="dead")
    assert claims.requeue_orphans("me") == 0
    assert Job.objects.get(pk=stuck.pk).status == Status.PROCESSING


def test_any_engine_alive_follows_heartbeats(settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT = 60
    assert not claims.any_engine_alive()
    beat("old", age_seconds=61)
    assert not claims.any_engine_alive()
    beat("fresh")
    assert claims.any_engine_alive()
