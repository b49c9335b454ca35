"""Every user action on a job in every status answers 2xx or 409 `conflict` through the API, never 500.

The action sets are derived from the transition table; this proves the services, the table and the API
agree, for a pulling backend (the engine) and a pushing one (the loopback service).
"""

from __future__ import annotations

import itertools

import pytest

from downloads.models import CANCELLABLE, PAUSABLE, RESUMABLE, RETRYABLE, TRANSITIONS, Job, Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory

ACTIONS = {"pause": PAUSABLE, "resume": RESUMABLE, "cancel": CANCELLABLE, "retry": RETRYABLE}
CASES = list(itertools.product(ACTIONS, Status, ["engine", "loopback"]))


def test_action_sets_follow_the_table():
    assert {s for s in Status if Status.PAUSED in TRANSITIONS[s]} == PAUSABLE
    assert Status.PROCESSING not in PAUSABLE  # a post-processor is never paused half-way
    assert {Status.PAUSED} == RESUMABLE
    assert {Status.FAILED, Status.CANCELLED} == RETRYABLE
    assert set(Status) - {Status.COMPLETED, Status.FAILED, Status.CANCELLED} == CANCELLABLE


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "status", "where"), CASES,
                         ids=[f"{a}-{s}-{b}" for a, s, b in CASES])
def test_user_action_is_2xx_or_409_never_500(api_client, user, loopback, action, status, where):
    PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["engine", "loopback"], max_active_jobs=50))
    job = JobFactory(user=user, status=status, backend=where)
    if where == "loopback" and status != Status.QUEUED:  # handed over: the remote service holds a transfer
        job.remote_id = loopback.remote_id_for(job)
        job.save(update_fields=["remote_id"])
        with loopback._remote() as state:
            state["transfers"][job.remote_id] = {"job": job.pk, "state": "downloading", "progress": 0.5, "size": 1}
    response = api_client.post(f"/api/v1/jobs/{job.pk}/{action}/", {}, format="json")
    after = Job.objects.get(pk=job.pk).status
    if status in ACTIONS[action]:
        assert response.status_code in (200, 201, 202), response.content
        assert after != status or action == "retry"
    else:
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "conflict"
        assert response.json()["detail"]
        assert after == status  # a refused action changes nothing
