"""One road home: the spine's bring-home runner (downloads/bring_home.py) on the loopback backend, the engine's
in-place road, the sweep, leases, attempts, backoff, permanent failure and the dead letter.

The Seedr and servers suites run their real backends through the same runner (tests/seedr, tests/servers:
`drive()` runs what was enqueued); the kill -9 takeover with a real qcluster is at the end of this file.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from downloads import bring_home, dispatch, leases, retries, runs, services
from downloads.backends import BackendError
from downloads.engine.backend import FILES_MISSING
from downloads.models import Job, JobEvent, Lease, Status
from seedr import client as seedr_client
from seedr import services as seedr
from tests import procs
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.config.test_tasks import queued
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.downloads.runs import run_bring_home
from tests.e2e.conftest import _print_logs, wait_for
from tests.fakes.loopback_backend import FILE_SIZE, KIND, content_for, file_name
from tests.fakes.seedr_fake import FakeSeedr, file_sha256

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["loopback"], max_active_jobs=3)).plan


def downloaded(user, n: int = 1, name: str = "Home") -> Job:
    """A loopback job three syncs in (75 %): the remote transfer is not finished yet."""
    job = services.add_magnet(user, f"magnet:?xt=urn:btih:{n:040x}&dn={name}", backend=KIND)
    dispatch.dispatch_queued()
    for _ in range(3):
        dispatch.sync_running()
    job.refresh_from_db()
    assert (job.status, job.progress) == (Status.DOWNLOADING, 0.75)
    return job


def messages(job: Job, code: str) -> list[dict]:
    return list(JobEvent.objects.filter(job_id=job.pk, kind="message", code=code).order_by("id")
                .values_list("data", flat=True))


def queued_tasks(func: str) -> list[dict]:
    """The tasks of `func` waiting in the configured broker (ORM or Redis), taken off the queue."""
    return [task for task in queued() if task["func"] == func]


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job


@pytest.mark.django_db
class TestRoadHome:
    def test_data_complete_moves_to_transferring_and_enqueues_only_after_commit(
            self, loopback, user, plan, django_capture_on_commit_callbacks):
        job = downloaded(user)
        get_broker().purge_queue()  # a Redis queue is not rolled back with the test's transaction
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            bring_home.data_complete(job)
            assert queued_tasks(bring_home.TASK) == []  # nothing leaves before the commit
        assert refreshed(job).status == Status.TRANSFERRING and job.attempts == 0
        assert leases.is_held(f"bring_home.{job.pk}")  # reserved: a sweep does not enqueue it twice
        assert bring_home.sweep() == 0
        for callback in callbacks:
            callback()
        [task] = queued_tasks(bring_home.TASK)
        assert task["args"][0] == job.pk

    def test_the_runner_brings_the_file_home_and_hands_over_to_finish(self, loopback, user, plan):
        job = downloaded(user, name="Big+Buck+Bunny")
        loopback.finish_remotely(job)
        bring_home.data_complete(job)
        assert run_bring_home(job.pk) == 1
        job = refreshed(job)
        assert (job.status, job.reason_code, job.progress) == (Status.COMPLETED, "delivered", 1.0)
        assert (job.data_dir / file_name(job)).read_bytes() == content_for(job.remote_id, FILE_SIZE)
        codes = list(JobEvent.objects.filter(job_id=job.pk).exclude(kind="progress").values_list("kind", "code"))
        assert codes[-3:] == [("status", "transferring"), ("files", "registered"), ("status", "completed")]
        assert not leases.is_held(f"bring_home.{job.pk}")  # released at the end of the run
        assert run_bring_home(job.pk) == 0 and loopback.calls()["bring_home"] == 1  # finished: never again

    def test_a_transient_error_is_an_attempt_with_backoff_and_the_sync_nudges_it_when_due(
            self, loopback, user, plan):
        job = downloaded(user)
        bring_home.data_complete(job)  # the remote is not done: "not_finished" (transient)
        before = timezone.now()
        assert run_bring_home(job.pk) == 0
        job = refreshed(job)
        assert (job.status, job.attempts, job.reason_code) == (Status.TRANSFERRING, 1, "not_finished")
        assert job.next_attempt_at >= before + retries.retry_delay(1)
        assert "Retrying in 10 s." in job.reason
        assert [(m["attempts"], m["retry_in"]) for m in messages(job, "not_finished")] == [(1, 10)]

        dispatch.sync_running()  # not due: the sync does not enqueue it, a stray task does nothing
        assert not leases.is_held(f"bring_home.{job.pk}")
        assert bring_home.run(job.pk) == 0 and loopback.calls()["bring_home"] == 1

        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        dispatch.sync_running()  # due: nudged (lease reserved for the enqueued run)
        assert leases.is_held(f"bring_home.{job.pk}")
        run_bring_home(job.pk)
        job = refreshed(job)
        assert job.attempts == 2 and job.next_attempt_at >= timezone.now() + dt.timedelta(seconds=19)
        assert [m["retry_in"] for m in messages(job, "not_finished")] == [10, 20]

        loopback.finish_remotely(job)
        Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
        assert bring_home.sweep() == 1  # the scheduled sweep finds it too
        assert run_bring_home(job.pk) == 1
        assert refreshed(job).status == Status.COMPLETED

    def test_attempts_run_out_into_the_dead_letter(self, loopback, user, plan, settings):
        settings.JOB_MAX_ATTEMPTS = 3
        abandoned = []
        loopback.abandon = abandoned.append
        job = downloaded(user)
        bring_home.data_complete(job)
        for _ in range(3):
            Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
            bring_home.nudge(refreshed(job))
            run_bring_home(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, retries.RETRIES_EXHAUSTED)
        assert job.reason.startswith("Gave up after 3 attempts. Last error: The download is not finished yet.")
        failed = JobEvent.objects.get(job_id=job.pk, kind="status", code="failed")
        assert (failed.data["last_code"], failed.data["attempts"]) == ("not_finished", 3)
        assert [j.pk for j in abandoned] == [job.pk]
        assert bring_home.sweep() == 0 and loopback.calls()["bring_home"] == 3

    def test_a_permanent_error_fails_at_once_with_its_code(self, loopback, user, plan):
        abandoned = []
        loopback.abandon = abandoned.append
        loopback.bring_home_errors.append(BackendError("The disk refuses it.", code="remote_gone", permanent=True))
        job = downloaded(user)
        bring_home.data_complete(job)
        run_bring_home(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code, job.reason, job.attempts) == (
            Status.FAILED, "remote_gone", "The disk refuses it.", 0)
        assert [j.pk for j in abandoned] == [job.pk]

    def test_a_crash_in_a_backend_counts_as_an_attempt_not_a_stuck_job(self, loopback, user, plan):
        loopback.bring_home_errors.append(ZeroDivisionError("bug"))
        job = downloaded(user)
        bring_home.data_complete(job)
        run_bring_home(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code, job.attempts) == (Status.TRANSFERRING, bring_home.CRASHED, 1)
        assert "ZeroDivisionError" in job.reason and "bug" not in job.reason  # no internals for the user

    def test_a_cancel_during_the_run_stops_it_and_the_cancel_stands(self, loopback, user, plan, monkeypatch):
        job = downloaded(user)
        bring_home.data_complete(job)
        monkeypatch.setattr(runs, "CHECK_EVERY_SECONDS", 0)

        def cancelled_meanwhile(j):
            services.cancel_job(user, Job.objects.get(pk=j.pk))
            runs.keep_alive()  # what a backend calls as bytes flow
            raise AssertionError("keep_alive must stop a cancelled job's run")

        loopback.bring_home = cancelled_meanwhile
        assert run_bring_home(job.pk) == 0
        job = refreshed(job)
        assert (job.status, job.attempts) == (Status.CANCELLED, 0)

    def test_a_held_lease_keeps_others_off_until_it_expires(self, loopback, user, plan):
        job = downloaded(user)
        loopback.finish_remotely(job)
        bring_home.data_complete(job)
        assert bring_home.run(job.pk, holder="someone-else") == 0  # the enqueued run holds it
        assert loopback.calls().get("bring_home") is None
        # The worker that held it was killed: the lease runs out, the sweep enqueues a new run, which wins.
        Lease.objects.filter(name=f"bring_home.{job.pk}").update(expires_at=timezone.now())
        assert bring_home.sweep() == 1
        assert run_bring_home(job.pk) == 1
        assert refreshed(job).status == Status.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_a_run_blocked_past_its_lease_ttl_keeps_the_lease_while_its_process_lives(loopback, user, plan, settings,
                                                                                   monkeypatch):
    """A transfer stuck in one read (no keep_alive for a while) is slow, not dead: nobody else may start on the
    same files meanwhile. A thread renews the lease; only a killed process lets it expire (e2e test below)."""
    settings.BRING_HOME_LEASE_SECONDS = 0.6
    enqueued = []
    monkeypatch.setattr(bring_home, "enqueue", lambda *args, **kwargs: enqueued.append(args))
    job = downloaded(user)
    loopback.finish_remotely(job)
    bring_home.data_complete(job)
    lease_name = f"bring_home.{job.pk}"
    reading, release = threading.Event(), threading.Event()
    deliver = loopback.bring_home

    def stuck_in_a_read(j):
        reading.set()
        assert release.wait(60), "the test never released the read"
        return deliver(j)

    loopback.bring_home = stuck_in_a_read
    outcome = []

    def worker():
        try:
            outcome.append(run_bring_home(job.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert reading.wait(60)
        first_expiry = Lease.objects.get(name=lease_name).expires_at
        wait_for(lambda: timezone.now() > first_expiry + dt.timedelta(seconds=0.6), "two TTLs past the claim")
        assert leases.is_held(lease_name)
        assert bring_home.sweep() == 0  # nobody else is sent after the same files
    finally:
        release.set()
        thread.join(60)
    assert outcome == [1] and refreshed(job).status == Status.COMPLETED
    assert not leases.is_held(lease_name)  # released at the end, and no late renewal brought it back
    assert len(enqueued) == 1


@pytest.mark.django_db
class TestInPlace:
    """The engine's files are already in the job's folder: its hook only verifies, then the finish line."""

    def test_an_engine_job_with_its_files_in_place_completes(self, user):
        job = JobFactory(user=user, status=Status.SEEDING)
        f = JobFileFactory(job=job, path="Film/film.mkv", size_bytes=5)
        (job.data_dir / "Film").mkdir(parents=True)
        (job.data_dir / f.path).write_bytes(b"12345")
        bring_home.complete_in_place(job, reason="Complete (seeded to ratio 1.00).", progress=1.0)
        job = refreshed(job)
        assert (job.status, job.reason) == (Status.COMPLETED, "Complete (seeded to ratio 1.00).")

    def test_an_engine_job_whose_file_vanished_fails_with_a_code(self, user):
        job = JobFactory(user=user, status=Status.SEEDING)
        JobFileFactory(job=job, path="gone.bin", size_bytes=5)
        job.data_dir.mkdir(parents=True)
        bring_home.complete_in_place(job)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, FILES_MISSING)


# --- one finish line: nobody else writes COMPLETED ------------------------------------------------------

PRODUCT = ["accounts", "billing", "config", "downloads", "seedr", "servers", "tests/fakes"]
WRITERS = {"change_status", "try_change_status", "update", "create", "get_or_create", "update_or_create"}


def _is_completed(node: ast.AST) -> bool:
    return ((isinstance(node, ast.Attribute) and node.attr == "COMPLETED")
            or (isinstance(node, ast.Constant) and node.value == "completed"))


def completed_writes(path: Path) -> list[int]:
    """Lines of `path` that write the completed status: a status change to it, `status=` COMPLETED in an
    update/create, or an assignment of it to a `.status`."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            moved = name in {"change_status", "try_change_status"} and any(map(_is_completed, node.args[1:2]))
            stored = name in WRITERS and any(k.arg == "status" and _is_completed(k.value) for k in node.keywords)
            if moved or stored:
                lines.append(node.lineno)
        elif (isinstance(node, ast.Assign) and _is_completed(node.value)
              and any(isinstance(t, ast.Attribute) and t.attr == "status" for t in node.targets)):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_finish_writes_completed():
    offenders = []
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts or path == ROOT / "downloads" / "finish.py":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in completed_writes(path)]
    assert offenders == [], "COMPLETED is written only by downloads/finish.py (call finish.finish)"


def test_the_completed_grep_finds_a_write(tmp_path):
    """The check above can fail: each form of a write is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("services.change_status(job, Status.COMPLETED)\n"
                      "Job.objects.filter(pk=1).update(status='completed')\n"
                      "job.status = Status.COMPLETED\n"
                      "Job.objects.filter(status=Status.COMPLETED)\n")
    assert completed_writes(sample) == [1, 2, 3]


# --- a worker killed mid-transfer: another worker takes the job over (real qcluster, real Seedr fake) --------

SEEDR_EMAIL = "takeover@seedr.test"
FILM = ("ab" * 20, "Long Film", [("Long Film.mkv", 3_000_000)])
HELD_AT = 1_000_000


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_transfer_is_taken_over_after_its_lease_expires(user, tmp_path, settings):
    info_hash, name, files = FILM
    fake = FakeSeedr(progress_step=100, device_interval=1).serve()
    fake.add_account(SEEDR_EMAIL, "pw", space_max=20_000_000)
    fake.define(info_hash, name, files)
    settings.SEEDR_API_URL, settings.SEEDR_OAUTH_URL = fake.api_url, fake.oauth_url
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=5))
    seedr.password_login(user, SEEDR_EMAIL, "pw")
    temp = tmp_path / "seedr-tmp"
    env = procs.process_env(tmp_path, SEEDR_API_URL=fake.api_url, SEEDR_OAUTH_URL=fake.oauth_url,
                            SEEDR_TEMP_DIR=str(temp), SYNC_INTERVAL="0.3", BRING_HOME_LEASE_SECONDS="3")
    lease_name = None
    try:
        fake.hold_next_download(HELD_AT)  # the first worker's download stalls here, mid-file
        with procs.qcluster(env, tmp_path) as first:
            job = seedr.add(user, magnet=f"magnet:?xt=urn:btih:{info_hash}&dn={name.replace(' ', '+')}")
            lease_name = f"bring_home.{job.pk}"
            part = temp / str(job.pk) / "files" / f"{name}.mkv.part"
            wait_for(lambda: part.exists() and part.stat().st_size == HELD_AT, "the transfer to be mid-file", 90)
            assert refreshed(job).status == Status.TRANSFERRING
            killed_holder = Lease.objects.get(name=lease_name).holder
            procs.kill_group(first)  # the whole cluster: sentinel, pusher, workers, monitor
        fake.release_downloads()
        assert refreshed(job).status == Status.TRANSFERRING  # nobody finished it

        with procs.qcluster(env, tmp_path):
            # Nobody renews the dead worker's lease: it expires within BRING_HOME_LEASE_SECONDS.
            wait_for(lambda: not leases.is_held(lease_name), "the killed worker's lease to expire", 30)
            async_task("downloads.tasks.sweep_runs", group="e2e")  # the schedule's tick
            wait_for(lambda: refreshed(job).status == Status.COMPLETED, f"the takeover ({job.reason})", 90)
    finally:
        fake.stop()
        for account_id in list(seedr_client.runner.clients):
            seedr_client.forget(account_id)
        _print_logs(tmp_path)

    job = refreshed(job)
    assert (job.reason_code, job.attempts) == ("delivered", 0)  # a takeover is not a failed attempt
    path, size = files[0]
    assert hashlib.sha256((job.data_dir / path).read_bytes()).hexdigest() == file_sha256(info_hash, path, size)
    ranges = [r["range"] for r in fake.requests if r["func"] == "ff_get"]
    assert ranges == [None, f"bytes={HELD_AT}-"]  # the new worker resumed from the partial file
    assert Lease.objects.get(name=lease_name).holder != killed_holder
    assert fake.account(SEEDR_EMAIL).is_empty()  # cleaned on Seedr by the run that took over
