"""Start guards: rules from outside the spine (a tracker's) that the dispatcher asks before it starts a job —
a `Wait` keeps the job queued with its reason without holding up the user's other jobs, a `Refuse` fails it."""

from __future__ import annotations

import pytest

from downloads import backends, dispatch, services
from downloads.models import Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory

HASHES = [f"{n:040x}" for n in range(1, 10)]


def magnet(n: int) -> str:
    return f"magnet:?xt=urn:btih:{HASHES[n]}&dn=Guarded+{n}"


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=5)).plan


@pytest.fixture
def verdicts():
    """A guard whose verdict per job id the test sets."""
    table: dict[int, backends.Wait | backends.Refuse] = {}
    backends.register_guard("test", lambda job: table.get(job.pk))
    yield table
    backends.unregister_guard("test")


@pytest.mark.django_db
def test_waiting_job_stays_queued_and_starts_when_the_guard_allows(loopback, user, plan, verdicts):
    held = services.add_magnet(user, magnet(1), backend="loopback")
    free = services.add_magnet(user, magnet(2), backend="loopback")
    verdicts[held.pk] = backends.Wait("tracker_unsatisfied_limit", "At the tracker's limit.")

    assert dispatch.dispatch_queued() == 1  # the other job of the same user and backend is not held up
    held.refresh_from_db()
    free.refresh_from_db()
    assert (held.status, held.reason_code, held.reason) == (Status.QUEUED, "tracker_unsatisfied_limit",
                                                            "At the tracker's limit.")
    assert free.status == Status.DOWNLOADING

    del verdicts[held.pk]
    assert dispatch.dispatch_queued() == 1
    held.refresh_from_db()
    assert held.status == Status.DOWNLOADING


@pytest.mark.django_db
def test_refused_job_fails_with_the_guards_reason(loopback, user, plan, verdicts):
    job = services.add_magnet(user, magnet(3), backend="loopback")
    verdicts[job.pk] = backends.Refuse("tracker_client_not_approved", "Not an approved client.")
    assert dispatch.dispatch_queued() == 0
    job.refresh_from_db()
    assert (job.status, job.reason_code) == (Status.FAILED, "tracker_client_not_approved")
    assert loopback.calls() == {}


def test_a_refusal_wins_over_a_wait_and_keeps_seeding_asks_guards(monkeypatch):
    monkeypatch.setattr(backends, "_guards", {})  # only this test's guards (apps register theirs at start)

    class Guard:
        def __call__(self, job):
            return backends.Wait("w", "wait")

        def keeps_seeding(self, job):
            return job == "private"

    backends.register_guard("a", Guard())
    backends.register_guard("b", lambda job: backends.Refuse("r", "refuse"))
    try:
        assert backends.check_guards("job") == backends.Refuse("r", "refuse")
        assert backends.keeps_seeding("private") and not backends.keeps_seeding("other")
    finally:
        backends.unregister_guard("a")
        backends.unregister_guard("b")
    assert backends.check_guards("job") is None
