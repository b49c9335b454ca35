"""The worker's dispatch and sync loop, with the loopback backend standing in for a remote service."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from downloads import backends, dispatch, retries, services
from downloads.models import Job, JobEvent, JobFile, Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory
from tests.fakes.loopback_backend import FILE_SIZE, KIND, LoopbackBackend, content_for, file_name

HASHES = [f"{n:040x}" for n in range(1, 10)]


def magnet(n: int, name: str = "") -> str:
    return f"magnet:?xt=urn:btih:{HASHES[n]}&dn={name or f'Loop+{n}'}"


@pytest.fixture
def no_loopback():
    previous = backends.get_backend(KIND)
    backends.unregister(KIND)
    yield
    if previous is not None:
        backends.register(previous)


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=3)).plan


def events_of(job: Job) -> list[tuple[str, str]]:
    return list(JobEvent.objects.filter(job_id=job.pk).order_by("id").values_list("kind", "code"))


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job


@pytest.mark.django_db
class TestDispatchQueued:
    def test_without_backend_job_stays_queued_with_one_reason_event(self, no_loopback, user):
        job = JobFactory(user=user, backend="loopback")
        for _ in range(3):
            assert dispatch.dispatch_queued() == 0
        job.refresh_from_db()
        assert (job.status, job.reason_code) == (Status.QUEUED, dispatch.NO_BACKEND)
        assert "loopback" in job.reason
        assert events_of(job) == [("message", dispatch.NO_BACKEND)]

    def test_registered_backend_receives_the_job(self, loopback, user, plan):
        job = services.add_magnet(user, magnet(1), backend="loopback")
        assert dispatch.dispatch_queued() == 1
        job.refresh_from_db()
        assert job.status == Status.DOWNLOADING
        assert job.remote_id == f"lb-{job.pk}"
        assert job.size_bytes == FILE_SIZE
        assert events_of(job) == [("created", "queued"), ("status", "starting"), ("status", "downloading")]
        assert loopback.calls() == {"submit": 1}
        assert dispatch.dispatch_queued() == 0  # nothing queued any more: no second submit
        assert loopback.calls() == {"submit": 1}

    def test_no_backend_reason_is_replaced_once_a_backend_appears(self, no_loopback, user, plan, tmp_path):
        job = JobFactory(user=user, backend="loopback")
        dispatch.dispatch_queued()
        backends.register(LoopbackBackend(state_dir=tmp_path / "lb"))
        try:
            assert dispatch.dispatch_queued() == 1
        finally:
            backends.unregister(KIND)
        job.refresh_from_db()
        assert (job.status, job.reason_code) == (Status.DOWNLOADING, "")

    def test_full_slots_make_jobs_wait_with_one_reason_event(self, loopback, user):
        PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=1))
        first = services.add_magnet(user, magnet(1), backend="loopback")
        second = services.add_magnet(user, magnet(2), backend="loopback")
        assert dispatch.dispatch_queued() == 1
        assert dispatch.dispatch_queued() == 0
        assert refreshed(first).status == Status.DOWNLOADING
        assert (refreshed(second).status, second.reason_code) == (Status.QUEUED, dispatch.WAITING_FOR_SLOT)
        assert events_of(second) == [("created", "queued"), ("message", dispatch.WAITING_FOR_SLOT)]

        for _ in range(4):  # the first job finishes and frees its slot
            dispatch.sync_running()
        assert refreshed(first).status == Status.COMPLETED
        assert dispatch.dispatch_queued() == 1
        assert refreshed(second).status == Status.DOWNLOADING

    def test_slots_are_per_user(self, loopback, user, other_user):
        for owner in (user, other_user):
            PlanAssignmentFactory(user=owner, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=1))
        services.add_magnet(user, magnet(1), backend="loopback")
        services.add_magnet(other_user, magnet(2), backend="loopback")
        assert dispatch.dispatch_queued() == 2

    def test_permanent_backend_error_fails_the_job_with_its_code(self, loopback, user, plan):
        job = services.add_magnet(user, magnet(1, "loopback-reject+me"), backend="loopback")
        assert dispatch.dispatch_queued() == 0
        job.refresh_from_db()
        assert (job.status, job.reason_code) == (Status.FAILED, "remote_rejected")
        assert job.reason == "The loopback service refuses this torrent."
        assert events_of(job)[-1] == ("status", "failed")
        assert dispatch.dispatch_queued() == 0
        assert loopback.calls() == {"submit": 1}  # failed fast: never retried

    def test_transient_backend_error_requeues_with_the_reason(self, loopback, user, plan):
        job = services.add_magnet(user, magnet(1, "loopback-busy+now"), backend="loopback")
        assert dispatch.dispatch_queued() == 0
        job.refresh_from_db()
        assert (job.status, job.reason_code) == (Status.QUEUED, "remote_busy")
        assert events_of(job) == [("created", "queued"), ("status", "starting"), ("status", "queued")]
        assert job.attempts == 1 and job.next_attempt_at > timezone.now()
        assert "Retrying in 10 s" in job.reason
        dispatch.dispatch_queued()
        assert loopback.calls() == {"submit": 1}  # backing off: not retried before next_attempt_at
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        dispatch.dispatch_queued()
        assert loopback.calls() == {"submit": 2}
        assert refreshed(job).attempts == 2

    def test_transient_errors_stop_at_job_max_attempts_with_the_last_error(self, loopback, user, plan, settings):
        settings.JOB_MAX_ATTEMPTS = 3
        job = services.add_magnet(user, magnet(1, "loopback-busy+now"), backend="loopback")
        for _ in range(3):
            Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
            dispatch.dispatch_queued()
        job.refresh_from_db()
        assert (job.status, job.reason_code) == (Status.FAILED, retries.RETRIES_EXHAUSTED)
        assert job.reason.startswith("Gave up after 3 attempts.")
        assert JobEvent.objects.filter(job=job).last().data["last_code"] == "remote_busy"
        dispatch.dispatch_queued()
        assert loopback.calls() == {"submit": 3}  # the dead letter is not retried

    def test_backoff_grows_and_is_capped(self):
        delays = [retries.retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 20)]
        assert delays == [10, 20, 40, 80, retries.RETRY_MAX_SECONDS]

    def test_crashing_backend_fails_its_job_and_spares_the_others(self, loopback, user, plan):
        class Crashing(LoopbackBackend):
            def submit(self, job):
                if job.name == "crash":
                    raise RuntimeError("bug in a backend")
                super().submit(job)

        backends.register(Crashing(state_dir=loopback.state_dir))
        crashing = services.add_magnet(user, magnet(1, "crash"), backend="loopback")
        healthy = services.add_magnet(user, magnet(2), backend="loopback")
        assert dispatch.dispatch_queued() == 1
        assert (refreshed(crashing).status, crashing.reason_code) == (Status.FAILED, dispatch.BACKEND_CRASHED)
        assert "bug in a backend" not in crashing.reason  # internals stay in the log
        assert refreshed(healthy).status == Status.DOWNLOADING

    def test_pulling_backend_is_left_to_claim_its_own_jobs(self, loopback, user, plan):
        class Pulling(LoopbackBackend):
            pulls_jobs = True

        backends.register(Pulling(state_dir=loopback.state_dir))
        job = services.add_magnet(user, magnet(1), backend="loopback")
        assert dispatch.dispatch_queued() == 0
        assert (refreshed(job).status, job.reason_code) == (Status.QUEUED, "")
        assert loopback.calls() == {}


@pytest.mark.django_db
class TestSyncRunning:
    def test_one_sync_call_per_group(self, loopback, user, other_user, plan):
        PlanAssignmentFactory(user=other_user, plan=PlanFactory(allowed_backends=["loopback"]))
        shared = [
            services.add_magnet(user, magnet(1), backend="loopback"),
            services.add_magnet(user, magnet(2), backend="loopback"),
            services.add_magnet(other_user, magnet(3), backend="loopback"),
        ]
        account = [
            services.add_magnet(user, magnet(4), backend="loopback:7"),
            services.add_magnet(other_user, magnet(5), backend="loopback:7"),
        ]
        JobFactory(user=user, backend="loopback", status=Status.COMPLETED)  # finished: never synced
        dispatch.dispatch_queued()

        assert dispatch.sync_running() == 2
        snapshot = loopback.snapshot()
        assert snapshot["calls"]["sync"] == 2
        assert sorted(snapshot["sync_batches"]) == sorted([[j.pk for j in shared], [j.pk for j in account]])
        for job in shared + account:
            assert refreshed(job).progress == 0.25
            assert events_of(job)[-1] == ("progress", "downloading")

    def test_job_unknown_to_the_service_fails_and_the_others_go_on(self, loopback, user, plan):
        good = services.add_magnet(user, magnet(1), backend="loopback")
        dispatch.dispatch_queued()
        lost = JobFactory(user=user, backend="loopback", status=Status.DOWNLOADING, remote_id="lb-unknown")
        assert dispatch.sync_running() == 1
        assert (refreshed(lost).status, lost.reason_code) == (Status.FAILED, "remote_missing")
        assert refreshed(good).progress == 0.25

    def test_a_crashing_group_does_not_stop_the_others(self, loopback, user, plan):
        class BrokenAccount(LoopbackBackend):
            def sync(self, jobs):
                if jobs[0].backend == "loopback:9":
                    raise ConnectionError("account 9 is unreachable")
                super().sync(jobs)

        backends.register(BrokenAccount(state_dir=loopback.state_dir))
        broken = services.add_magnet(user, magnet(1), backend="loopback:9")
        good = services.add_magnet(user, magnet(2), backend="loopback")
        dispatch.dispatch_queued()
        assert dispatch.sync_running() == 1
        assert refreshed(good).progress == 0.25
        assert (refreshed(broken).status, broken.progress) == (Status.DOWNLOADING, 0.0)

    def test_loopback_runs_a_job_to_completion_and_delivers_its_file(self, loopback, user, plan):
        job = services.add_magnet(user, magnet(1, "Big+Buck+Bunny"), backend="loopback")
        dispatch.dispatch_queued()
        for _ in range(4):
            dispatch.sync_running()
        job.refresh_from_db()
        assert (job.status, job.progress, job.downloaded_bytes) == (Status.COMPLETED, 1.0, FILE_SIZE)
        assert job.finished_at is not None
        stored = JobFile.objects.get(job=job)
        assert (stored.path, stored.size_bytes, stored.is_complete) == ("Big_Buck_Bunny.bin", FILE_SIZE, True)
        assert (job.data_dir / file_name(job)).read_bytes() == content_for(job.remote_id, FILE_SIZE)
        assert events_of(job) == [
            ("created", "queued"), ("status", "starting"), ("status", "downloading"),
            *[("progress", "downloading")] * 4,
            ("files", "registered"), ("status", "completed"),
        ]
        progress = [e.data["progress"] for e in JobEvent.objects.filter(job_id=job.pk, kind="progress")]
        assert progress == [0.25, 0.5, 0.75, 1.0]
        dispatch.sync_running()  # finished jobs are no longer synced
        assert loopback.calls()["sync"] == 4

    def test_pause_and_resume_go_through_the_backend(self, loopback, user, plan):
        job = services.add_magnet(user, magnet(1), backend="loopback")
        dispatch.dispatch_queued()
        dispatch.sync_running()
        services.pause_job(user, refreshed(job))
        dispatch.sync_running()
        job.refresh_from_db()
        assert (job.status, job.progress) == (Status.PAUSED, 0.25)
        assert loopback.snapshot()["transfers"][job.remote_id]["state"] == "paused"

        services.resume_job(user, job)
        assert refreshed(job).status == Status.STARTING
        dispatch.sync_running()
        job.refresh_from_db()
        assert (job.status, job.progress) == (Status.DOWNLOADING, 0.5)
        assert loopback.calls()["pause"] == loopback.calls()["resume"] == 1

    def test_cancel_with_data_removes_the_transfer(self, loopback, user, plan):
        job = services.add_magnet(user, magnet(1), backend="loopback")
        dispatch.dispatch_queued()
        services.cancel_job(user, refreshed(job), delete_data=True)
        snapshot = loopback.snapshot()
        assert snapshot["transfers"] == {}
        assert snapshot["cancelled"] == [{"job": job.pk, "delete_data": True}]
        assert refreshed(job).status == Status.CANCELLED
        assert dispatch.sync_running() == 0  # nothing left to sync


def _steady_tick_queries() -> int:
    with CaptureQueriesContext(connection) as ctx:
        dispatch.dispatch_queued()
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_a_full_users_queue_costs_nothing_per_job(loopback, user):
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=1, allowed_backends=["loopback"]))
    JobFactory(user=user, status=Status.DOWNLOADING, backend="loopback")
    waiting = [JobFactory(user=user, backend="loopback") for _ in range(10)]
    dispatch.dispatch_queued()  # the first run writes each job's reason
    assert {j.reason_code for j in Job.objects.filter(pk__in=[w.pk for w in waiting])} == {"waiting_for_slot"}
    few = _steady_tick_queries()
    JobFactory.create_batch(200, user=user, backend="loopback", reason_code="waiting_for_slot")
    assert _steady_tick_queries() == few <= 6
    assert loopback.calls() == {}


@pytest.mark.django_db
def test_one_users_long_queue_never_delays_another_users_job(loopback, user, other_user):
    loopback_plan = PlanFactory(max_active_jobs=2, allowed_backends=["loopback"])
    PlanAssignmentFactory(user=user, plan=loopback_plan)
    PlanAssignmentFactory(user=other_user, plan=loopback_plan)
    JobFactory.create_batch(500, user=user, backend="loopback")  # a 500-line batch, all older
    late = JobFactory(user=other_user, backend="loopback")
    dispatch.dispatch_queued(limit=10)
    assert refreshed(late).status == Status.DOWNLOADING  # served on the first tick, in turn
    assert Job.objects.filter(user=user, status=Status.DOWNLOADING).count() == 2  # A gets its two slots


@pytest.mark.django_db
def test_a_waiting_group_does_not_block_the_same_users_other_backend(loopback, user):
    class Busy(LoopbackBackend):  # the head of user's "loopback" queue always waits (e.g. Seedr's one-at-a-time)
        def may_start(self, job):
            return backends.Wait("remote_turn", "Waiting for its turn.")

    class Other(LoopbackBackend):
        kind = "other"

    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=5, allowed_backends=["loopback", "other"]))
    backends.register(Busy(state_dir=loopback.state_dir))
    backends.register(Other(state_dir=loopback.state_dir))
    try:
        stuck = JobFactory.create_batch(50, user=user, backend="loopback")
        other = JobFactory(user=user, backend="other")
        dispatch.dispatch_queued(limit=20)
    finally:
        backends.unregister("other")
    assert refreshed(other).status == Status.DOWNLOADING
    assert refreshed(stuck[0]).reason_code == "remote_turn"
