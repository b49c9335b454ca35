"""One finish line (downloads/finish.py) and the post-processor hook (downloads/postprocessors.py): a job a
post-processor wants enters `processing`, reports progress as events, ends completed or failed with a
code, survives a dead worker (lease + sweep) and is retried from the admin; the checksum manifest is real.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker

from accounts.models import AuditLog
from config.errors import Conflict
from downloads import bring_home, finish, postprocessors
from downloads.models import EventKind, Job, JobEvent, Lease, Status
from downloads.postprocessors import MANIFEST_DIR, ChecksumManifest, PostProcessError, manifest_path
from tests.config.test_tasks import queued
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.downloads.runs import run_postprocess


class Recorder(postprocessors.PostProcessor):
    """A post-processor whose behaviour each test scripts: `outcomes` are raised (or None: succeed) in turn."""

    name = "recorder"
    label = "Recorder"

    def __init__(self) -> None:
        self.wanted: set[int] = set()
        self.outcomes: list[BaseException | None] = []
        self.runs: list[int] = []

    def wants(self, job):
        return job.pk in self.wanted

    def run(self, job, report):
        self.runs.append(job.pk)
        for done in (0, 50, 100):
            report.progress(done, 100, message="step")
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


@pytest.fixture
def recorder():
    processor = postprocessors.register(Recorder())
    yield processor
    postprocessors.unregister(processor.name)


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def home_job(user, *, status=Status.TRANSFERRING, files=(("a.bin", b"x" * 10),), **fields) -> Job:
    fields.setdefault("backend", "seedr")
    job = JobFactory(user=user, status=status, **fields)
    for path, data in files:
        JobFileFactory(job=job, path=path, size_bytes=len(data))
        (job.data_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (job.data_dir / path).write_bytes(data)
    return job


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job


def processing_events(job: Job) -> list[dict]:
    return list(JobEvent.objects.filter(job_id=job.pk, kind=EventKind.PROGRESS, code=Status.PROCESSING)
                .order_by("id").values_list("data", flat=True))


@pytest.mark.django_db
class TestFinishLine:
    def test_without_a_post_processor_the_job_completes(self, user):
        job = home_job(user)
        finish.finish(job, reason_code="delivered", reason="Here.")
        assert (refreshed(job).status, job.reason_code, job.progress) == (Status.COMPLETED, "delivered", 1.0)

    def test_a_post_processor_takes_the_job_reports_progress_and_completes_it(self, recorder, user, settings):
        settings.PROGRESS_EVENT_INTERVAL = 0
        job = home_job(user, status=Status.SEEDING, backend="engine", claimed_by="engine@host")
        recorder.wanted.add(job.pk)
        finish.finish(job)
        job = refreshed(job)
        assert (job.status, job.reason_code, job.claimed_by) == (Status.PROCESSING, "processing", "")
        entered = JobEvent.objects.get(job_id=job.pk, kind="status", code="processing")
        assert entered.data["postprocessor"] == "recorder"
        assert leases_held(job) == ["postprocess"]  # reserved for the enqueued run

        assert run_postprocess(job.pk) == 1
        job = refreshed(job)
        assert (job.status, job.reason) == (Status.COMPLETED, "Download complete; recorder done.")
        assert [(e["done"], e["total"], e["postprocessor"]) for e in processing_events(job)] == [
            (0, 100, "recorder"), (50, 100, "recorder"), (100, 100, "recorder")]
        assert leases_held(job) == []

    def test_progress_events_are_coalesced_but_the_last_always_goes_out(self, recorder, user, settings):
        settings.PROGRESS_EVENT_INTERVAL = 3600
        job = home_job(user)
        recorder.wanted.add(job.pk)
        finish.finish(job)
        run_postprocess(job.pk)
        assert [e["done"] for e in processing_events(job)] == [0, 100]

    def test_the_run_is_enqueued_after_commit(self, recorder, user, django_capture_on_commit_callbacks):
        job = home_job(user)
        recorder.wanted.add(job.pk)
        get_broker().purge_queue()  # a Redis queue is not rolled back with the test's transaction
        with django_capture_on_commit_callbacks(execute=True):
            finish.finish(job)
        [task] = [task for task in queued() if task["func"] == finish.TASK]
        assert task["args"][0] == job.pk

    def test_a_failure_fails_the_job_with_its_code_and_the_admin_retries_it(
            self, recorder, user, staff_client, admin_user):
        job = home_job(user)
        recorder.wanted.add(job.pk)
        recorder.outcomes = [PostProcessError("The tags are broken.", code="tags_broken")]
        finish.finish(job)
        run_postprocess(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code, job.reason) == (Status.FAILED, "tags_broken", "The tags are broken.")
        assert finish.failed_in_processing(job)

        response = staff_client.post(reverse("admin:downloads_job_changelist"),
                                     {"action": "retry_postprocess", "_selected_action": [str(job.pk)]},
                                     follow=True)
        assert "Post-processing again: 1." in [str(m) for m in response.context["messages"]]
        audit = AuditLog.objects.get(action="job.postprocess_retry")
        assert (audit.actor, audit.target_id) == (admin_user, str(job.pk))
        assert (refreshed(job).status, job.reason_code, job.finished_at) == (
            Status.PROCESSING, "postprocess_retried", None)
        assert run_postprocess(job.pk) == 1
        assert refreshed(job).status == Status.COMPLETED and recorder.runs == [job.pk, job.pk]

    def test_only_a_job_that_failed_in_processing_can_be_post_processed_again(self, user, staff_client):
        job = home_job(user, status=Status.DOWNLOADING)
        finish.finish(job)  # completed: nothing to retry
        with pytest.raises(Conflict):
            finish.retry_postprocess(None, refreshed(job))
        failed_elsewhere = home_job(user, status=Status.FAILED)
        response = staff_client.post(reverse("admin:downloads_job_changelist"),
                                     {"action": "retry_postprocess", "_selected_action": [str(failed_elsewhere.pk)]},
                                     follow=True)
        messages = [str(m) for m in response.context["messages"]]
        assert messages[0] == "Post-processing again: 0." and "Skipped 1" in messages[1]
        assert refreshed(failed_elsewhere).status == Status.FAILED

    def test_a_crash_fails_the_job_without_leaking_internals(self, recorder, user):
        job = home_job(user)
        recorder.wanted.add(job.pk)
        recorder.outcomes = [KeyError("secret internals")]
        finish.finish(job)
        run_postprocess(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, finish.POSTPROCESS_CRASHED)
        assert "secret" not in job.reason

    def test_a_cancel_while_processing_stands(self, recorder, user, monkeypatch):
        from downloads import runs, services

        monkeypatch.setattr(runs, "CHECK_EVERY_SECONDS", 0)
        job = home_job(user)
        recorder.wanted.add(job.pk)
        finish.finish(job)

        def cancelled_meanwhile(j, report):
            services.cancel_job(user, Job.objects.get(pk=j.pk))
            report.progress(1, 2)
            raise AssertionError("progress must stop a cancelled job's run")

        recorder.run = cancelled_meanwhile
        assert run_postprocess(job.pk) == 0
        assert refreshed(job).status == Status.CANCELLED

    def test_a_dead_workers_run_is_taken_over_after_its_lease_expires(self, recorder, user):
        job = home_job(user)
        recorder.wanted.add(job.pk)
        finish.finish(job)
        assert finish.run_postprocess(job.pk, holder="a-second-worker") == 0  # the reserved run holds it
        assert finish.sweep_processing() == 0
        Lease.objects.filter(name=f"postprocess.{job.pk}").update(expires_at=timezone.now())  # its worker died
        assert finish.sweep_processing() == 1
        assert run_postprocess(job.pk) == 1
        assert refreshed(job).status == Status.COMPLETED and recorder.runs == [job.pk]


def leases_held(job: Job) -> list[str]:
    names = Lease.objects.filter(expires_at__gt=timezone.now(), name__endswith=f".{job.pk}").values_list("name",
                                                                                                         flat=True)
    return sorted(name.split(".")[0] for name in names)


@pytest.mark.django_db
class TestChecksumManifest:
    FILES = (("Album/01.flac", bytes(range(256)) * 9000), ("Album/cover.jpg", b"\xff\xd8" * 700_000),
             ("notes.txt", b"hello\n"))

    def test_off_by_default(self, user):
        job = home_job(user)
        finish.finish(job)
        assert refreshed(job).status == Status.COMPLETED
        assert not manifest_path(job).exists()

    def test_writes_a_sha256sum_manifest_with_progress(self, user, settings):
        settings.CHECKSUM_MANIFEST = True
        settings.PROGRESS_EVENT_INTERVAL = 0
        job = home_job(user, files=self.FILES, status=Status.SEEDING, backend="engine", claimed_by="engine@h")
        bring_home.complete_in_place(job)  # what the engine does after seeding: its hook verifies the files
        assert (refreshed(job).status, job.claimed_by) == (Status.PROCESSING, "")
        assert run_postprocess(job.pk) == 1
        assert refreshed(job).status == Status.COMPLETED
        expected = "".join(f"{hashlib.sha256(data).hexdigest()}  {path}\n" for path, data in sorted(self.FILES))
        assert manifest_path(job).read_text() == expected
        events = processing_events(job)
        total = sum(len(data) for _, data in self.FILES)
        assert events[0]["done"] == 0 and events[-1]["done"] == total and len(events) >= 4  # 1 MiB chunks
        assert all(e["postprocessor"] == "checksum_manifest" for e in events)
        assert sorted(job.files.values_list("path", flat=True)) == sorted(p for p, _ in self.FILES)  # not listed
        if shutil.which("sha256sum"):  # the manifest is what the standard tool checks
            check = subprocess.run(["sha256sum", "-c", f"{MANIFEST_DIR}/SHA256SUMS"], cwd=job.data_dir,
                                   capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr

    def test_a_download_with_its_own_flotilla_folder_fails_with_a_code(self, user, settings):
        settings.CHECKSUM_MANIFEST = True
        job = home_job(user, files=((f"{MANIFEST_DIR}/SHA256SUMS", b"mine"),))
        finish.finish(job)
        run_postprocess(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "checksum_path_taken")
        assert (job.data_dir / MANIFEST_DIR / "SHA256SUMS").read_bytes() == b"mine"  # untouched

    def test_a_missing_file_fails_with_a_code(self, user, settings):
        settings.CHECKSUM_MANIFEST = True
        job = home_job(user)
        (job.data_dir / "a.bin").unlink()
        finish.finish(job)
        run_postprocess(job.pk)
        assert (refreshed(job).status, job.reason_code) == (Status.FAILED, "checksum_unreadable")

    def test_files_that_stayed_on_a_server_are_not_hashed(self, user, settings):
        settings.CHECKSUM_MANIFEST = True
        job = JobFactory(user=user, status=Status.DOWNLOADING, backend="server:1")
        assert not ChecksumManifest().wants(job)
        finish.finish(job, reason_code="done_on_server")
        assert refreshed(job).status == Status.COMPLETED
