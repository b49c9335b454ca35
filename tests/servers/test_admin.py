"""Deleting torrent servers in the console goes through servers.services.delete_server."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from downloads.models import Job, Status
from servers.models import TorrentServer
from tests.downloads.factories import JobFactory
from tests.servers.factories import TorrentServerFactory


@pytest.fixture
def console(client, admin_user):
    client.force_login(admin_user)
    return client


def _jobs_on(server: TorrentServer, user) -> dict[str, Job]:
    return {
        status: JobFactory(user=user, backend=server.backend_name, status=status, remote_id="ab" * 20)
        for status in (Status.DOWNLOADING, Status.SEEDING, Status.PAUSED, Status.COMPLETED)
    }


@pytest.mark.django_db(transaction=True)
def test_delete_selected_fails_the_servers_jobs_and_audits_each_server(console, admin_user, user):
    servers = TorrentServerFactory.create_batch(2, owner=user)
    jobs = _jobs_on(servers[0], user)
    other = JobFactory(user=user, backend="engine", status=Status.DOWNLOADING)
    response = console.post(reverse("admin:servers_torrentserver_changelist"), {
        "action": "delete_selected", "post": "yes", "_selected_action": [str(s.pk) for s in servers],
    })
    assert response.status_code == 302
    assert not TorrentServer.objects.exists()
    for status, job in jobs.items():
        job.refresh_from_db()
        if status == Status.COMPLETED:
            assert job.status == Status.COMPLETED
        else:
            assert (job.status, job.reason_code) == (Status.FAILED, "server_deleted"), status
    assert Job.objects.get(pk=other.pk).status == Status.DOWNLOADING  # another backend's job is untouched
    rows = AuditLog.objects.filter(action="server.delete", actor=admin_user)
    assert sorted(rows.values_list("target_id", flat=True)) == sorted(str(s.pk) for s in servers)


@pytest.mark.django_db(transaction=True)
def test_delete_page_goes_through_the_service_too(console, admin_user, user):
    server = TorrentServerFactory(owner=user)
    job = JobFactory(user=user, backend=server.backend_name, status=Status.DOWNLOADING, remote_id="cd" * 20)
    url = reverse("admin:servers_torrentserver_delete", args=[server.pk])
    assert console.get(url).status_code == 200
    assert console.post(url, {"post": "yes"}).status_code == 302
    job.refresh_from_db()
    assert (job.status, job.reason_code) == (Status.FAILED, "server_deleted")
    assert AuditLog.objects.filter(action="server.delete", target_id=str(server.pk), actor=admin_user).exists()
