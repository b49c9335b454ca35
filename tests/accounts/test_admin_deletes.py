"""Deleting users in the console: their jobs go through the job service first, everything is audited."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.models import AuditLog, User
from downloads.models import Job, Status
from tests.accounts.factories import UserFactory
from tests.downloads.factories import JobFactory, JobFileFactory


@pytest.fixture
def console(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.django_db(transaction=True)
def test_delete_selected_users_removes_their_jobs_and_files_and_audits(console, admin_user, user):
    done = JobFactory(user=user, status=Status.COMPLETED)
    waiting = JobFactory(user=user, status=Status.QUEUED)
    jobfile = JobFileFactory(job=done, path="movie/a.mkv")
    on_disk = done.data_dir / jobfile.path
    on_disk.parent.mkdir(parents=True)
    on_disk.write_bytes(b"x" * 10)
    response = console.post(reverse("admin:accounts_user_changelist"),
                            {"action": "delete_selected", "post": "yes", "_selected_action": [str(user.pk)]})
    assert response.status_code == 302
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Job.objects.filter(pk__in=[done.pk, waiting.pk]).exists()
    assert not (settings.DOWNLOADS_DIR / str(user.pk)).exists()
    assert AuditLog.objects.filter(action="user.delete", target_id=str(user.pk), actor=admin_user).exists()
    deleted_jobs = AuditLog.objects.filter(action="job.delete", actor=admin_user).values_list("target_id", flat=True)
    assert sorted(deleted_jobs) == sorted([str(done.pk), str(waiting.pk)])


@pytest.mark.django_db
def test_operator_cannot_delete_themselves_or_a_superuser(console, admin_user):
    boss = UserFactory(email="root@example.com", is_superuser=True)
    for target in (admin_user, boss):
        assert console.get(reverse("admin:accounts_user_delete", args=[target.pk])).status_code == 403
    response = console.post(reverse("admin:accounts_user_changelist"), {
        "action": "delete_selected", "post": "yes", "_selected_action": [str(admin_user.pk), str(boss.pk)],
    }, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert any("Skipped 2" in m and "own account" in m and "superuser" in m for m in messages)
    assert User.objects.filter(pk__in=[admin_user.pk, boss.pk]).count() == 2
    assert not AuditLog.objects.filter(action="user.delete").exists()
