import pytest
from django.db import connection

from accounts.models import AuditLog
from config.errors import DomainError
from downloads import services
from downloads.models import BlockedInfoHash, Job, JobEvent, JobFile, Status
from downloads.paths import UnsafePath
from tests.downloads.factories import JobFactory

HEX = "f" * 40
MAGNET = f"magnet:?xt=urn:btih:{HEX}&dn=Sample"


@pytest.mark.django_db
class TestBlocklist:
    def test_blocked_hash_refused_at_intake_in_any_encoding(self, user, admin_user):
        services.block_info_hash(admin_user, HEX.upper(), "DMCA")
        import base64

        b32 = base64.b32encode(bytes.fromhex(HEX)).decode()
        for magnet in (MAGNET, f"magnet:?xt=urn:btih:{b32}"):
            with pytest.raises(DomainError) as exc:
                services.add_magnet(user, magnet)
            assert exc.value.code == "blocked"
        assert not Job.objects.exists()
        assert AuditLog.objects.filter(action="blocklist.add", actor=admin_user).exists()

    def test_blocklist_stores_only_ciphertext_and_hmac(self, admin_user):
        blocked = services.block_info_hash(admin_user, HEX)
        with connection.cursor() as cursor:
            cursor.execute("SELECT info_hash FROM downloads_blockedinfohash WHERE id = %s", [blocked.pk])
            assert HEX not in cursor.fetchone()[0]
        assert BlockedInfoHash.objects.get().info_hash == HEX

    def test_blocking_twice_is_one_row(self, admin_user):
        services.block_info_hash(admin_user, HEX)
        services.block_info_hash(admin_user, HEX)
        assert BlockedInfoHash.objects.count() == 1

    def test_bad_hash_refused(self, admin_user):
        with pytest.raises(DomainError):
            services.block_info_hash(admin_user, "xyz")


@pytest.mark.django_db(transaction=True)
def test_failed_creation_leaves_nothing_half_made(user, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services.events, "emit", explode)
    with pytest.raises(RuntimeError):
        services.add_magnet(user, MAGNET)
    assert not Job.objects.exists() and not JobEvent.objects.exists() and not AuditLog.objects.exists()


@pytest.mark.django_db
def test_dispatcher_kick_waits_for_commit(user, django_capture_on_commit_callbacks, monkeypatch):
    kicked = []
    monkeypatch.setattr(services, "_kick_dispatcher", lambda: kicked.append(1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.add_magnet(user, MAGNET)
        assert kicked == []
    assert len(callbacks) == 1


@pytest.mark.django_db
class TestFiles:
    def test_register_files_refuses_escaping_paths(self, user):
        job = JobFactory(user=user)
        for bad in ("../x", "/etc/passwd", "a/../../b", "a\x00b"):
            with pytest.raises(UnsafePath):
                services.register_files(job, [(bad, 1, 0)])
        assert not JobFile.objects.exists()

    def test_register_files_is_idempotent_and_guesses_mime(self, user):
        job = JobFactory(user=user)
        services.register_files(job, [("d/a.mkv", 10, 0), ("d/b.mp3", 5, 1)])
        services.register_files(job, [("d/a.mkv", 10, 0)])
        assert dict(job.files.values_list("path", "mime_type")) == {"d/a.mkv": "video/x-matroska",
                                                                    "d/b.mp3": "audio/mpeg"}

    def test_file_progress(self, user):
        job = JobFactory(user=user)
        services.register_files(job, [("a", 10, 0), ("b", 10, 1)])
        services.update_file_progress(job, {0: 10, 1: 3})
        assert dict(job.files.values_list("path", "completed_bytes")) == {"a": 10, "b": 3}


@pytest.mark.django_db
class TestActions:
    def test_cannot_cancel_finished_job(self, user):
        job = JobFactory(user=user, status=Status.COMPLETED)
        with pytest.raises(DomainError) as exc:
            services.cancel_job(user, job)
        assert exc.value.code == "conflict"

    def test_retry_only_failed_or_cancelled(self, user):
        with pytest.raises(DomainError):
            services.retry_job(user, JobFactory(user=user, status=Status.DOWNLOADING))
        job = services.retry_job(user, JobFactory(user=user, status=Status.FAILED, reason_code="x"))
        assert job.status == Status.QUEUED and job.reason_code == "retried"

    def test_every_action_is_audited(self, user):
        job = JobFactory(user=user)
        services.pause_job(user, job)
        services.resume_job(user, job)
        services.cancel_job(user, job)
        services.retry_job(user, job)
        services.delete_job(user, job)
        actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
        assert actions == ["job.pause", "job.resume", "job.cancel", "job.retry", "job.delete"]

    def test_backend_errors_become_domain_errors(self, user):
        from downloads import backends

        class Broken(backends.Backend):
            kind = "broken"

            def submit(self, job): ...
            def sync(self, jobs): ...
            def pause(self, job):
                raise backends.BackendError("server unreachable", code="server_unreachable")
            def resume(self, job): ...
            def cancel(self, job, *, delete_data): ...
            def bring_home(self, job): ...

        backends.register(Broken())
        try:
            job = JobFactory(user=user, backend="broken", status=Status.DOWNLOADING, remote_id="r1")
            with pytest.raises(DomainError) as exc:
                services.pause_job(user, job)
            assert exc.value.code == "server_unreachable" and exc.value.http_status == 502
            assert Job.objects.get(pk=job.pk).status == Status.DOWNLOADING
        finally:
            backends.unregister("broken")




@pytest.mark.django_db
def test_unverified_email_blocks_jobs_only_when_required(user, settings):
    user.email_verified = False
    user.save()
    services.add_magnet(user, MAGNET)
    settings.REQUIRE_EMAIL_VERIFICATION = True
    with pytest.raises(DomainError) as exc:
        services.add_magnet(user, "magnet:?xt=urn:btih:" + "1" * 40)
    assert exc.value.code == "email_not_verified"
    with pytest.raises(DomainError):
        services.add_batch(user, "magnet:?xt=urn:btih:" + "2" * 40)


@pytest.mark.django_db
def test_api_key_factory_makes_usable_keys():
    from tests.accounts.factories import ApiKeyFactory

    first, second = ApiKeyFactory(), ApiKeyFactory()
    assert first.key_hash != second.key_hash


@pytest.mark.django_db
def test_a_reason_is_written_once_even_by_two_dispatchers_with_stale_copies(user):
    job = JobFactory(user=user)
    stale_copy = Job.objects.get(pk=job.pk)
    services.set_reason(job, "no_backend", "No backend yet.")
    services.set_reason(stale_copy, "no_backend", "No backend yet.")
    assert JobEvent.objects.filter(job_id=job.pk, kind="message").count() == 1


@pytest.mark.django_db
def test_a_batch_kicks_the_dispatcher_once(user, django_capture_on_commit_callbacks, monkeypatch):
    kicked = []
    monkeypatch.setattr(services, "_kick_dispatcher", lambda: kicked.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        services.add_batch(user, "\n".join(f"magnet:?xt=urn:btih:{i:040x}" for i in range(1, 4)))
    assert kicked == [1]
