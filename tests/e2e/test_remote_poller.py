"""The remote poller against a real qcluster: jobs of a pushing backend progress with no scheduled sync.

The test never enqueues a sync: the dispatcher's kick starts the poller chain, which syncs every
SYNC_INTERVAL seconds until nothing remote is active, and one chain at a time holds the lease.
"""

from __future__ import annotations

import itertools

import pytest
from django_q.models import Task

from downloads import services
from downloads.models import Job, Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.e2e.conftest import LOOPBACK_ENV, wait_for, worker_process


@pytest.fixture
def worker(transactional_db, tmp_path):
    with worker_process(tmp_path, **LOOPBACK_ENV, SYNC_INTERVAL="0.2"):
        yield


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_remote_jobs_complete_through_the_poller_chain_alone(worker, user):
    PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=5))
    jobs = [services.add_magnet(user, f"magnet:?xt=urn:btih:{n:040x}&dn=Chain+{n}", backend="loopback")
            for n in (1, 2)]

    wait_for(lambda: all(j.status == Status.COMPLETED for j in Job.objects.filter(pk__in=[j.pk for j in jobs])),
             "both jobs to complete through the poller", timeout=60)

    # A link's Task row is saved when the link ends: after it has seen that nothing remote is active any more.
    links = wait_for(lambda: [t for t in Task.objects.filter(func="downloads.tasks.poll_remote", success=True)
                              if t.result], "a poller link that synced to finish", timeout=30)
    polling = sorted((t.started, t.stopped) for t in links)
    links = Task.objects.filter(func="downloads.tasks.poll_remote", success=True)
    for (_, stopped), (started, _) in itertools.pairwise(polling):
        assert started >= stopped  # never two chains polling at once
    assert sum(t.result for t in links) >= 4  # the loopback needs four syncs per job: the poller did them
