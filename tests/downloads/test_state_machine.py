"""The transition table, tested as a table: every (from, to) pair is either allowed or raises."""

import itertools

import pytest

from downloads import services
from downloads.models import TRANSITIONS, IllegalTransition, Job, JobEvent, Status
from tests.downloads.factories import JobFactory

S = Status
ALLOWED = {
    (S.QUEUED, S.STARTING), (S.QUEUED, S.FETCHING_METADATA), (S.QUEUED, S.DOWNLOADING), (S.QUEUED, S.WAITING),
    (S.QUEUED, S.PAUSED), (S.QUEUED, S.CANCELLED), (S.QUEUED, S.FAILED),
    (S.STARTING, S.QUEUED), (S.STARTING, S.FETCHING_METADATA), (S.STARTING, S.DOWNLOADING),
    (S.STARTING, S.SEEDING), (S.STARTING, S.TRANSFERRING), (S.STARTING, S.WAITING), (S.STARTING, S.COMPLETED),
    (S.STARTING, S.PAUSED), (S.STARTING, S.CANCELLED), (S.STARTING, S.FAILED),
    (S.FETCHING_METADATA, S.QUEUED), (S.FETCHING_METADATA, S.DOWNLOADING), (S.FETCHING_METADATA, S.SEEDING),
    (S.FETCHING_METADATA, S.WAITING), (S.FETCHING_METADATA, S.COMPLETED), (S.FETCHING_METADATA, S.PAUSED),
    (S.FETCHING_METADATA, S.CANCELLED), (S.FETCHING_METADATA, S.FAILED),
    (S.DOWNLOADING, S.QUEUED), (S.DOWNLOADING, S.FETCHING_METADATA), (S.DOWNLOADING, S.SEEDING),
    (S.DOWNLOADING, S.TRANSFERRING), (S.DOWNLOADING, S.PROCESSING), (S.DOWNLOADING, S.WAITING),
    (S.DOWNLOADING, S.COMPLETED), (S.DOWNLOADING, S.PAUSED), (S.DOWNLOADING, S.CANCELLED),
    (S.DOWNLOADING, S.FAILED),
    (S.SEEDING, S.QUEUED), (S.SEEDING, S.DOWNLOADING), (S.SEEDING, S.PROCESSING), (S.SEEDING, S.COMPLETED),
    (S.SEEDING, S.PAUSED), (S.SEEDING, S.CANCELLED), (S.SEEDING, S.FAILED),
    (S.TRANSFERRING, S.QUEUED), (S.TRANSFERRING, S.PROCESSING), (S.TRANSFERRING, S.WAITING),
    (S.TRANSFERRING, S.COMPLETED), (S.TRANSFERRING, S.PAUSED), (S.TRANSFERRING, S.CANCELLED),
    (S.TRANSFERRING, S.FAILED),
    (S.PROCESSING, S.COMPLETED), (S.PROCESSING, S.CANCELLED), (S.PROCESSING, S.FAILED),
    (S.WAITING, S.QUEUED), (S.WAITING, S.STARTING), (S.WAITING, S.FETCHING_METADATA), (S.WAITING, S.DOWNLOADING),
    (S.WAITING, S.SEEDING), (S.WAITING, S.TRANSFERRING), (S.WAITING, S.COMPLETED), (S.WAITING, S.PAUSED),
    (S.WAITING, S.CANCELLED), (S.WAITING, S.FAILED),
    (S.PAUSED, S.QUEUED), (S.PAUSED, S.STARTING), (S.PAUSED, S.FETCHING_METADATA), (S.PAUSED, S.DOWNLOADING),
    (S.PAUSED, S.SEEDING), (S.PAUSED, S.CANCELLED), (S.PAUSED, S.FAILED),
    (S.FAILED, S.QUEUED), (S.CANCELLED, S.QUEUED),
    (S.FAILED, S.PROCESSING),  # a failed post-processing retried from the admin (downloads/finish.py)
}
ALL_PAIRS = list(itertools.product(S, S))


def test_table_is_exactly_the_documented_one():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


def test_completed_is_final_and_terminal_states_only_retry():
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == {S.QUEUED}
    assert TRANSITIONS[S.FAILED] == {S.QUEUED, S.PROCESSING}  # retry, or retry its post-processing


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_change_status_follows_table(current, target):
    job = JobFactory(status=current)
    if (current, target) in ALLOWED:
        services.change_status(job, target, reason_code="t")
        assert Job.objects.get(pk=job.pk).status == target
        assert JobEvent.objects.filter(job_id=job.pk, kind="status", code=target).count() == 1
    else:
        with pytest.raises(IllegalTransition):
            services.change_status(job, target)
        assert Job.objects.get(pk=job.pk).status == current
        assert not JobEvent.objects.filter(job_id=job.pk).exists()


@pytest.mark.django_db
def test_stale_status_is_refused_not_overwritten():
    job = JobFactory(status=S.DOWNLOADING)
    stale = Job.objects.get(pk=job.pk)
    services.change_status(job, S.PAUSED)
    with pytest.raises(services.StaleJob):
        services.change_status(stale, S.SEEDING)
    assert Job.objects.get(pk=job.pk).status == S.PAUSED
    assert stale.status == S.PAUSED  # refreshed so the caller can decide again


@pytest.mark.django_db
def test_terminal_transition_sets_finished_and_zeroes_rates():
    job = JobFactory(status=S.DOWNLOADING, download_rate=500, peers=4, eta_seconds=10)
    services.change_status(job, S.COMPLETED)
    job.refresh_from_db()
    assert job.finished_at is not None
    assert (job.download_rate, job.peers, job.eta_seconds) == (0, 0, None)


@pytest.mark.django_db
def test_events_are_append_only():
    job = JobFactory()
    services.change_status(job, S.PAUSED)
    event = JobEvent.objects.get(job_id=job.pk)
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        JobEvent.objects.filter(pk=event.pk).update(code="x")
