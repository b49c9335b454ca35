"""The spine's small general pieces for remote backends: leases, the dispatcher's `may_start` hook and the
sub-minute remote poller (`dispatch.poll_remote`). The poller against a real qcluster is in
tests/e2e/test_remote_poller.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from downloads import backends, dispatch, leases, services
from downloads.models import Job, Lease, Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.fakes.loopback_backend import KIND, LoopbackBackend


def magnet(n: int) -> str:
    return f"magnet:?xt=urn:btih:{n:040x}&dn=Poll+{n}"


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=5)).plan


@pytest.mark.django_db
class TestLeases:
    def test_one_holder_at_a_time_until_it_expires_or_is_released(self):
        assert leases.claim("x", "a", ttl=60)
        assert not leases.claim("x", "b", ttl=60)
        assert leases.claim("x", "a", ttl=60)  # renewing is claiming again
        assert leases.is_held("x")
        leases.release("x", "b")  # not b's to release
        assert not leases.claim("x", "b", ttl=60)
        leases.release("x", "a")
        assert not leases.is_held("x")
        assert leases.claim("x", "b", ttl=60)

    def test_an_expired_lease_can_be_taken_over(self):
        assert leases.claim("x", "a", ttl=60)
        Lease.objects.filter(name="x").update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        assert leases.claim("x", "b", ttl=60)
        assert Lease.objects.get(name="x").holder == "b"


class OneAtATime(LoopbackBackend):
    """A loopback backend that admits one active job per user, like Seedr's batch concurrency."""

    def may_start(self, job):
        if Job.objects.filter(user=job.user, backend=KIND, status__in={Status.DOWNLOADING}).exists():
            return backends.Wait("remote_busy_turn", "One at a time.")
        return None


@pytest.mark.django_db
class TestMayStart:
    def test_a_backend_can_hold_jobs_in_the_queue_with_a_reason(self, user, plan, tmp_path, settings):
        settings.PROGRESS_EVENT_INTERVAL = 0
        backends.register(OneAtATime(state_dir=tmp_path / "lb"))
        try:
            first = services.add_magnet(user, magnet(1), backend=KIND)
            second = services.add_magnet(user, magnet(2), backend=KIND)
            assert dispatch.dispatch_queued() == 1
            assert dispatch.dispatch_queued() == 0  # asked again: still waiting, one message only
            second.refresh_from_db()
            assert (second.status, second.reason_code) == (Status.QUEUED, "remote_busy_turn")
            assert second.events.filter(kind="message", code="remote_busy_turn").count() == 1
            for _ in range(4):
                dispatch.sync_running()
            first.refresh_from_db()
            assert first.status == Status.COMPLETED
            assert dispatch.dispatch_queued() == 1
            second.refresh_from_db()
            assert second.status == Status.DOWNLOADING
        finally:
            backends.unregister(KIND)

    def test_the_default_admits_everything(self, loopback, user, plan):
        services.add_magnet(user, magnet(1), backend=KIND)
        services.add_magnet(user, magnet(2), backend=KIND)
        assert dispatch.dispatch_queued() == 2


@pytest.mark.django_db
class TestPollRemote:
    def test_polls_until_no_remote_job_is_active_then_releases_the_lease(self, loopback, user, plan, settings):
        settings.SYNC_INTERVAL = 0.5
        job = services.add_magnet(user, magnet(1), backend=KIND)
        dispatch.dispatch_queued()
        sleeps, successors = [], []
        rounds = dispatch.poll_remote(sleep=sleeps.append, enqueue_successor=lambda: successors.append(1))
        job.refresh_from_db()
        assert job.status == Status.COMPLETED
        assert rounds == 4 and sleeps == [0.5] * 3  # the loopback needs four syncs
        assert successors == []  # nothing left to poll: the chain ends
        assert not leases.is_held(dispatch.POLL_LEASE)

    def test_does_nothing_without_active_remote_jobs(self, loopback, user, plan):
        assert dispatch.poll_remote(sleep=pytest.fail) == 0
        assert not Lease.objects.exists()

    def test_a_second_chain_does_not_poll_while_one_holds_the_lease(self, loopback, user, plan):
        services.add_magnet(user, magnet(1), backend=KIND)
        dispatch.dispatch_queued()
        assert leases.claim(dispatch.POLL_LEASE, "another-worker", ttl=60)
        assert dispatch.poll_remote(sleep=pytest.fail) == 0
        assert loopback.calls().get("sync") is None
        assert not dispatch.start_poller()  # and no link is enqueued either

    def test_a_link_out_of_budget_hands_over_to_a_successor(self, loopback, user, plan, settings):
        settings.SYNC_INTERVAL = 0.5
        services.add_magnet(user, magnet(1), backend=KIND)
        dispatch.dispatch_queued()
        successors = []

        def successor():
            assert not leases.is_held(dispatch.POLL_LEASE)  # released first, so the successor can claim it
            successors.append(1)

        assert dispatch.poll_remote(budget=0.1, sleep=pytest.fail, enqueue_successor=successor) == 1
        assert successors == [1]

    def test_start_poller_enqueues_one_link_when_remote_jobs_are_active(self, loopback, user, plan, monkeypatch):
        import django_q.tasks

        enqueued = []
        monkeypatch.setattr(django_q.tasks, "async_task", lambda func, **kw: enqueued.append(func))
        assert not dispatch.start_poller()
        services.add_magnet(user, magnet(1), backend=KIND)
        dispatch.dispatch_queued()
        assert dispatch.start_poller()
        assert enqueued[-1] == "downloads.tasks.poll_remote"
