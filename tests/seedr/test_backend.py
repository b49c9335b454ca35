"""The Seedr backend against the live fake Seedr: submit, progress, transfer home, cleanup, failure codes."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.utils import timezone

from downloads import dispatch
from downloads import services as jobs
from downloads.models import Job, JobEvent, Status
from seedr import services
from seedr.models import SeedrAccount, SeedrTask
from tests.downloads.runs import run_bring_home
from tests.fakes.seedr_fake import DEFAULT_FILE_SIZE, file_sha256
from tests.seedr.conftest import SEEDR_EMAIL, drive, info_hash, magnet, refreshed


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def statuses(job: Job) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job.pk, kind="status").order_by("id").values_list("code", flat=True))


@pytest.mark.django_db
class TestHappyPath:
    def test_a_magnet_runs_on_seedr_comes_home_and_seedr_is_cleaned(self, fake, user, connected):
        job = services.add(user, magnet=magnet(1, "Sintel"))
        drive()  # dispatch (submit) + sync (50 %)
        job = refreshed(job)
        assert job.status == Status.DOWNLOADING and job.progress == 0.5
        assert job.size_bytes == DEFAULT_FILE_SIZE and job.seeds > 0
        assert fake.snapshot(SEEDR_EMAIL)["torrents"][0]["progress"] == 50
        drive()  # 100 %: a folder on Seedr → transfer → cleanup
        job = refreshed(job)
        assert job.status == Status.COMPLETED, job.reason
        assert statuses(job) == ["starting", "fetching_metadata", "downloading", "transferring", "completed"]
        path = job.data_dir / "Sintel.bin"
        assert sha256(path) == file_sha256(info_hash(1), "Sintel.bin", DEFAULT_FILE_SIZE)
        assert [(f.path, f.size_bytes, f.completed_bytes) for f in job.files.all()] == [
            ("Sintel.bin", DEFAULT_FILE_SIZE, DEFAULT_FILE_SIZE)]
        assert fake.account(SEEDR_EMAIL).is_empty()  # torrent, folder and files deleted on Seedr
        assert not (services.settings.SEEDR_TEMP_DIR / str(job.pk)).exists()
        # Cleanup is the last step of bringing the files home: the job holds its Seedr slot until then.
        assert JobEvent.objects.filter(job_id=job.pk, kind="message", code="seedr_cleanup").exists()
        completed = JobEvent.objects.get(job_id=job.pk, kind="status", code="completed")
        assert (completed.data["previous"], completed.data["reason_code"]) == ("transferring", "delivered")
        provider = JobEvent.objects.get(job_id=job.pk, kind="status", code="downloading").data["provider"]
        assert provider["name"] == "seedr" and provider["torrent_id"] == job.seedr.torrent_id

    def test_multi_file_torrent_comes_home_file_by_file_with_its_tree(self, fake, user, connected):
        files = [("cd1/01.flac", 120_000), ("cd2/01.flac", 90_000), ("cover.jpg", 5_000)]
        fake.define(info_hash(2), "Album", files)
        job = services.add(user, magnet=magnet(2, "Album"))
        drive(2)
        job = refreshed(job)
        assert job.status == Status.COMPLETED, job.reason
        for path, size in files:
            assert sha256(job.data_dir / path) == file_sha256(info_hash(2), path, size)
        assert sorted(job.files.values_list("path", flat=True)) == ["cd1/01.flac", "cd2/01.flac", "cover.jpg"]
        assert fake.calls("fetch_file") == 3 and fake.account(SEEDR_EMAIL).is_empty()

    def test_archive_mode_extracts_safely(self, fake, user, connected, settings):
        settings.SEEDR_MULTIFILE_MODE = "archive"
        files = [("a.txt", 10_000), ("sub/b.txt", 20_000)]
        fake.define(info_hash(3), "Pack", files)
        job = services.add(user, magnet=magnet(3, "Pack"))
        drive(2)
        job = refreshed(job)
        assert job.status == Status.COMPLETED, job.reason
        assert sha256(job.data_dir / "sub/b.txt") == file_sha256(info_hash(3), "sub/b.txt", 20_000)
        assert fake.calls("create_empty_archive") == 1 and fake.calls("fetch_file") == 0

    def test_a_torrent_file_is_uploaded_as_multipart(self, fake, user, connected):
        import bencodepy

        info = {b"name": b"Doc.pdf", b"length": 40_000, b"piece length": 16384, b"pieces": b"p" * 60}
        job = services.add(user, torrent=bencodepy.encode({b"info": info}))
        drive(2)
        job = refreshed(job)
        assert job.status == Status.COMPLETED, job.reason
        assert (job.data_dir / "Doc.pdf").stat().st_size == 40_000
        record = next(r for r in fake.requests if r["func"] == "add_torrent")
        assert record["files"] == ["torrent_file"]

    def test_the_magnet_field_change_is_handled(self, fake, user, connected):
        fake.drift_magnet_field = True  # torrent_magnet → 404, magnet → works (seedrcc #16)
        job = services.add(user, magnet=magnet(4))
        drive()
        assert refreshed(job).status == Status.DOWNLOADING
        adds = [r["form"] for r in fake.requests if r["func"] == "add_torrent"]
        assert adds == [["folder_id", "torrent_magnet", "wishlist_id"], ["folder_id", "magnet"]]


@pytest.mark.django_db
class TestFailures:
    def test_queue_full_fails_with_its_code_and_leaves_no_wishlist_entry(self, fake, user, connected):
        fake.account(SEEDR_EMAIL).max_active = 0  # something else runs on the Seedr account
        job = services.add(user, magnet=magnet(5))
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "seedr_queue_full")
        assert "queue is full" in job.reason
        assert fake.snapshot(SEEDR_EMAIL)["wishlist"] == []

    def test_quota_exceeded_on_seedr_mid_batch_the_batch_goes_on(self, fake, user, connected):
        fake.define(info_hash(11), "One")
        fake.define(info_hash(12), "TooBig", [("huge.bin", 60_000_000)])
        fake.define(info_hash(13), "Three")
        text = "\n".join(magnet(n, name) for n, name in ((11, "One"), (12, "TooBig"), (13, "Three")))
        batch = services.add_batch(user, text)
        drive(8)
        first, second, third = [refreshed(j) for j in batch.jobs]
        assert first.status == Status.COMPLETED and third.status == Status.COMPLETED
        assert (second.status, second.reason_code) == (Status.FAILED, "seedr_quota_exceeded")
        assert fake.stats["max_active_seen"] == 1
        assert fake.account(SEEDR_EMAIL).is_empty() and fake.snapshot(SEEDR_EMAIL)["wishlist"] == []

    def test_plan_quota_is_enforced_when_seedr_learns_the_size(self, fake, user, connected, plan):
        plan.max_job_size_bytes = 100_000
        plan.save()
        job = services.add(user, magnet=magnet(6))  # 300 kB once Seedr knows it
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "quota_exceeded")
        assert fake.account(SEEDR_EMAIL).is_empty()  # freed on Seedr too

    def test_size_limit_is_checked_before_transferring(self, fake, user, connected, settings):
        settings.SEEDR_SIZE_LIMIT_MB = 1
        fake.define(info_hash(7), "Large", [("big.bin", 2 * 1024 * 1024)])
        job = services.add(user, magnet=magnet(7, "Large"))
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "seedr_size_limit")
        assert fake.stats["bytes_served"] == 0 and fake.account(SEEDR_EMAIL).is_empty()

    def test_a_stalled_magnet_fails_after_the_timeout_and_is_removed(self, fake, user, connected, settings):
        fake.define(info_hash(8), "Dead", dead=True)
        job = services.add(user, magnet=magnet(8, "Dead"))
        drive(3)
        assert refreshed(job).status == Status.DOWNLOADING  # still within the stall timeout
        SeedrTask.objects.filter(job=job).update(submitted_at=timezone.now() - dt.timedelta(
            seconds=settings.SEEDR_STALL_TIMEOUT + 1))
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "seedr_stalled")
        assert fake.account(SEEDR_EMAIL).is_empty()

    def test_transfer_cut_halfway_is_resumed_with_range(self, fake, user, connected):
        fake.define(info_hash(9), "Film", [("film.mkv", 3_000_000)])
        job = services.add(user, magnet=magnet(9, "Film"))
        drive()
        fake.cut_next_download(1_500_000)
        drive()
        job = refreshed(job)
        assert job.status == Status.COMPLETED, job.reason
        ranges = [r["range"] for r in fake.requests if r["func"] == "ff_get"]
        assert ranges[0] is None and ranges[1] == "bytes=1500000-"
        assert sha256(job.data_dir / "film.mkv") == file_sha256(info_hash(9), "film.mkv", 3_000_000)
        assert fake.stats["bytes_served"] == 3_000_000  # nothing fetched twice

    def test_an_interrupted_transfer_resumes_in_a_later_task(self, fake, user, connected):
        fake.define(info_hash(10), "Show", [("ep.mkv", 2_000_000)])
        job = services.add(user, magnet=magnet(10, "Show"))
        drive()
        for _ in range(4):  # every in-task attempt is cut: the task gives up for now, keeping the part
            fake.cut_next_download(100_000)
        dispatch.sync_running()
        run_bring_home(job.pk)
        job = refreshed(job)
        assert (job.status, job.reason_code, job.attempts) == (Status.TRANSFERRING, "seedr_transfer_retry", 1)
        assert job.next_attempt_at > timezone.now()  # the spine's backoff
        Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
        dispatch.sync_running()  # the sync nudges the due retry to the runner
        run_bring_home(job.pk)
        job = refreshed(job)
        assert job.status == Status.COMPLETED
        assert sha256(job.data_dir / "ep.mkv") == file_sha256(info_hash(10), "ep.mkv", 2_000_000)
        assert fake.stats["bytes_served"] == 2_000_000

    def test_archive_with_traversal_names_is_refused_and_nothing_escapes(self, fake, user, connected, settings,
                                                                         tmp_path):
        settings.SEEDR_MULTIFILE_MODE = "archive"
        fake.define(info_hash(14), "Evil", [("a.txt", 1000), ("b.txt", 1000)])
        fake.evil_archive_entries = [("Evil/../../escaped.txt", b"gotcha", False)]
        job = services.add(user, magnet=magnet(14, "Evil"))
        drive(2)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "seedr_unsafe_archive")
        assert "unsafe name" in job.reason
        assert not list(tmp_path.rglob("escaped.txt"))
        assert not job.data_dir.exists() and fake.account(SEEDR_EMAIL).is_empty()

    def test_archive_with_a_symlink_is_refused(self, fake, user, connected, settings):
        settings.SEEDR_MULTIFILE_MODE = "archive"
        fake.define(info_hash(15), "Links", [("a.txt", 1000), ("b.txt", 1000)])
        fake.evil_archive_entries = [("Links/etc", b"/etc/passwd", True)]
        job = services.add(user, magnet=magnet(15, "Links"))
        drive(2)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "seedr_unsafe_archive")
        assert "symbolic link" in job.reason

    def test_seedr_errors_are_transient_and_retried_with_backoff(self, fake, user, connected):
        fake.fail_next("add_torrent", 500, {"error": "boom"})
        job = services.add(user, magnet=magnet(16))
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code, job.attempts) == (Status.QUEUED, "seedr_unavailable", 1)
        Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
        drive()
        assert refreshed(job).status == Status.DOWNLOADING

    def test_other_seedr_refusals_fail_with_seedrs_message(self, fake, user, connected):
        fake.fail_next("add_torrent", 200, {"result": "private_not_allowed", "code": 400})
        job = services.add(user, magnet=magnet(17))
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.FAILED, "seedr_error")
        assert "premium" in job.reason

    def test_cancel_removes_the_torrent_on_seedr(self, fake, user, connected):
        job = services.add(user, magnet=magnet(18))
        drive()
        jobs.cancel_job(user, refreshed(job))
        assert refreshed(job).status == Status.CANCELLED
        assert fake.account(SEEDR_EMAIL).is_empty()

    def test_a_running_seedr_job_cannot_be_paused(self, fake, user, connected):
        job = services.add(user, magnet=magnet(19))
        drive()
        with pytest.raises(jobs.Conflict) as refused:
            jobs.pause_job(user, refreshed(job))
        assert refused.value.code == "seedr_pause_unsupported"


@pytest.mark.django_db
class TestTokens:
    def test_expired_access_token_is_refreshed_persisted_and_the_job_goes_on(self, fake, user, connected):
        before = services.stored_token(connected.pk)
        job = services.add(user, magnet=magnet(20))
        drive()
        fake.expire_tokens()
        drive()
        after = services.stored_token(connected.pk)
        assert after.access_token != before.access_token and after.refresh_token == before.refresh_token
        assert refreshed(job).status == Status.COMPLETED
        assert fake.calls("token") == 2  # the login and one refresh

    def test_expired_refresh_token_makes_jobs_wait_and_a_reconnect_resumes_them(
            self, fake, user, connected, mailoutbox, django_capture_on_commit_callbacks):
        job = services.add(user, magnet=magnet(21))
        drive()
        fake.expire_tokens()
        fake.revoke_refresh_tokens()
        with django_capture_on_commit_callbacks(execute=True):
            drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.WAITING, "seedr_auth_expired")
        account = SeedrAccount.objects.get(user=user)
        assert account.state == SeedrAccount.State.EXPIRED
        assert [m.subject for m in mailoutbox] == ["Your Seedr login expired"]  # told once
        drive()
        assert len(mailoutbox) == 1 and refreshed(job).status == Status.WAITING

        services.password_login(user, SEEDR_EMAIL, "s3cret-seedr")  # the user connects again
        drive(2)
        job = refreshed(job)
        assert job.status == Status.COMPLETED, job.reason
        codes = list(JobEvent.objects.filter(job_id=job.pk, kind="status").values_list("code", flat=True))
        assert codes == ["starting", "fetching_metadata", "downloading", "waiting", "downloading", "transferring",
                         "completed"]

    def test_a_job_waits_when_the_user_never_connected(self, fake, user, plan):
        job = services.add(user, magnet=magnet(22))
        drive()
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.QUEUED, "seedr_not_connected")
        services.password_login(user, SEEDR_EMAIL, "s3cret-seedr")
        drive()
        assert refreshed(job).status == Status.DOWNLOADING


@pytest.mark.django_db
def test_a_torrent_deleted_on_seedr_fails_after_a_grace_period(fake, user, connected):
    job = services.add(user, magnet=magnet(30))
    drive()
    account = fake.account(SEEDR_EMAIL)
    with fake.lock:
        account.torrents.clear()  # someone deleted it on seedr.cc
    drive()
    assert refreshed(job).status == Status.DOWNLOADING  # maybe Seedr is just turning it into a folder
    SeedrTask.objects.filter(job=job).update(missing_since=timezone.now() - dt.timedelta(minutes=5))
    drive()
    job = refreshed(job)
    assert (job.status, job.reason_code) == (Status.FAILED, "seedr_error")


@pytest.mark.django_db
def test_one_listing_per_sync_for_all_of_a_users_seedr_jobs(fake, user, connected, settings):
    settings.SEEDR_BATCH_CONCURRENCY = 3
    fake.account(SEEDR_EMAIL).max_active = 3  # a premium account
    jobs_ = [services.add(user, magnet=magnet(40 + n)) for n in range(3)]
    dispatch.dispatch_queued()
    assert {refreshed(j).status for j in jobs_} == {Status.FETCHING_METADATA}
    before = fake.calls("list_contents")
    dispatch.sync_running()
    assert fake.calls("list_contents") == before + 1  # one root listing brought all three up to date
    assert {refreshed(j).progress for j in jobs_} == {0.5}
