"""DELETE /api/v1/files/{id}/: one file of a stopped job leaves disk, row, storage figure; event and audit."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from billing.services import storage_committed, usage_summary
from downloads.models import EventKind, Job, JobEvent, JobFile, Status
from tests.downloads.factories import JobFactory, JobFileFactory

MB = 2**20


def _job_with_files(user, status=Status.COMPLETED):
    job = JobFactory(user=user, status=status, size_bytes=3 * MB, downloaded_bytes=3 * MB, progress=1.0)
    files = [JobFileFactory(job=job, path=p, size_bytes=MB, completed_bytes=MB)
             for p in ("Show/S01/e1.mkv", "Show/S01/e2.mkv", "Show/notes.txt")]
    for f in files:
        path = job.data_dir / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * f.size_bytes)
    return job, files


def _url(file_id: int) -> str:
    return reverse("file-detail", args=[file_id])


@pytest.mark.django_db
def test_delete_file_removes_it_and_storage_follows(api_client, user):
    job, (e1, e2, notes) = _job_with_files(user)
    assert storage_committed(user) == 3 * MB
    response = api_client.delete(_url(e1.pk))
    assert response.status_code == 204
    assert not (job.data_dir / e1.path).exists()
    assert (job.data_dir / e2.path).exists()  # the rest stays
    assert not JobFile.objects.filter(pk=e1.pk).exists()
    job.refresh_from_db()
    assert job.size_bytes == 2 * MB and job.downloaded_bytes == 2 * MB and job.data_deleted_at is None
    assert storage_committed(user) == 2 * MB == usage_summary(user).storage_used
    event = JobEvent.objects.filter(job_id=job.pk, kind=EventKind.FILES).latest("id")
    assert event.code == "deleted"
    assert event.data == {"file": e1.pk, "path": e1.path, "size_bytes": 2 * MB, "downloaded_bytes": 2 * MB,
                          "remaining": 2}
    row = AuditLog.objects.get(action="file.delete", target_id=str(e1.pk))
    assert row.actor == user and row.metadata["job"] == job.pk and row.metadata["path"] == e1.path
    # The files API (what the page's tree reloads from) no longer lists it.
    listed = api_client.get(reverse("job-files", args=[job.pk])).json()["files"]
    assert [f["path"] for f in listed] == [e2.path, notes.path]


@pytest.mark.django_db
def test_deleting_the_last_files_empties_folders_and_marks_the_job_data_deleted(api_client, user):
    job, files = _job_with_files(user)
    for f in files:
        assert api_client.delete(_url(f.pk)).status_code == 204
    job.refresh_from_db()
    assert job.data_deleted_at is not None and job.size_bytes == 0
    assert job.data_dir.exists() and not any(job.data_dir.iterdir())  # empty folders gone, the job's kept
    assert storage_committed(user) == 0


@pytest.mark.django_db
def test_another_users_file_is_a_404_and_stays(api_client, other_user):
    job, (e1, *_) = _job_with_files(other_user)
    assert api_client.delete(_url(e1.pk)).json()["code"] == "not_found"
    assert api_client.delete(_url(e1.pk)).status_code == 404
    assert (job.data_dir / e1.path).exists() and JobFile.objects.filter(pk=e1.pk).exists()
    assert not AuditLog.objects.filter(action="file.delete").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("file_id", ["0", "99999999", "1180591620717411303424"])
def test_missing_or_absurd_ids_are_404(api_client, user, file_id):
    response = api_client.delete(f"/api/v1/files/{file_id}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.DOWNLOADING, Status.SEEDING, Status.PAUSED, Status.QUEUED])
def test_a_running_job_refuses_with_409_and_keeps_the_file(api_client, user, status):
    job, (e1, *_) = _job_with_files(user, status=status)
    response = api_client.delete(_url(e1.pk))
    assert response.status_code == 409 and response.json()["code"] == "job_running"
    assert (job.data_dir / e1.path).exists() and JobFile.objects.filter(pk=e1.pk).exists()
    assert Job.objects.get(pk=job.pk).size_bytes == 3 * MB


@pytest.mark.django_db
def test_a_symlink_is_removed_never_its_target(api_client, user, tmp_path):
    job, (e1, *_) = _job_with_files(user)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (job.data_dir / e1.path).unlink()
    (job.data_dir / e1.path).symlink_to(job.data_dir / "Show" / "notes.txt")
    assert api_client.delete(_url(e1.pk)).status_code == 204
    assert (job.data_dir / "Show" / "notes.txt").exists()
    # A row whose path escapes the job folder through a symlinked directory is refused, nothing removed.
    (job.data_dir / "link").symlink_to(tmp_path)
    escaping = JobFileFactory(job=job, path="link/precious.txt")
    response = api_client.delete(_url(escaping.pk))
    assert response.status_code == 400 and response.json()["code"] == "unsafe_path"
    assert outside.read_text() == "keep me" and JobFile.objects.filter(pk=escaping.pk).exists()


@pytest.mark.django_db
def test_job_page_offers_the_delete_url(client, user):
    job, _ = _job_with_files(user)
    client.force_login(user)
    body = client.get(reverse("downloads:job_detail", args=[job.pk])).content.decode()
    assert '"fileUrl": "/api/v1/files/0/"' in body and '"delete_file": ["cancelled", "completed", "failed"]' in body
