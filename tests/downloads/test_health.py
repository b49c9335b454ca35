"""The admin health page and its JSON twin, and the figures behind them (downloads/health.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Task

from downloads import health
from downloads.models import Job, ProcessHeartbeat, Status
from tests.downloads.factories import JobEventFactory, JobFactory


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _beat(kind: str, name: str, seconds_ago: float, **info) -> ProcessHeartbeat:
    seen = timezone.now() - dt.timedelta(seconds=seconds_ago)
    return ProcessHeartbeat.objects.create(kind=kind, name=name, last_seen=seen, started_at=seen, info=info)


@pytest.mark.django_db
def test_workers_get_their_own_longer_timeout(settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT, settings.WORKER_HEARTBEAT_TIMEOUT = 60, 180
    _beat("worker", "worker@a:1", 90)  # between two once-a-minute beats: alive
    _beat("engine", "engine@a:1", 90)
    beats = {b["name"]: b["stale"] for b in health.heartbeats()}
    assert beats == {"worker@a:1": False, "engine@a:1": True}


@pytest.mark.django_db
def test_a_restarted_process_leaving_a_stale_row_is_not_an_outage(settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT = 60
    _beat("web", "web@a:1", 3600)  # the process before a restart
    _beat("web", "web@a:2", 2)
    _beat("engine", "engine@a:1", 3600)  # the only engine: down
    snap = health.snapshot()
    assert snap["ok"] is False and snap["kinds_down"] == ["engine"]


@pytest.mark.django_db
def test_heartbeats_are_stale_after_the_timeout(settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT, settings.WORKER_HEARTBEAT_TIMEOUT = 60, 180
    _beat("engine", "engine@a:1", 5)
    _beat("worker", "worker@a:2", 600)
    beats = {b["name"]: b for b in health.heartbeats()}
    assert beats["engine@a:1"]["stale"] is False
    assert beats["worker@a:2"]["stale"] is True
    assert beats["worker@a:2"]["age_seconds"] >= 600


@pytest.mark.django_db
def test_relay_lag_is_events_behind_the_newest_id(user):
    events = [JobEventFactory(job=JobFactory(user=user)) for _ in range(5)]
    _beat("web", "web@a:1", 1, cursor=events[1].pk, last_lag_ms=12.5)
    _beat("web", "web@a:2", 1)  # a web process that never relayed: no cursor, not a relay row
    snapshot = health.snapshot()
    assert snapshot["max_event_id"] == events[-1].pk
    assert snapshot["relays"] == [
        {"name": "web@a:1", "cursor": events[1].pk, "events_behind": 3, "last_lag_ms": 12.5, "stale": False}
    ]


@pytest.mark.django_db
def test_failed_jobs_in_the_last_hour_and_status_counts(user):
    now = timezone.now()
    recent = JobFactory(user=user, status=Status.FAILED, finished_at=now - dt.timedelta(minutes=5),
                        reason_code="tracker_error")
    JobFactory(user=user, status=Status.FAILED, finished_at=now - dt.timedelta(hours=2))
    JobFactory(user=user, status=Status.DOWNLOADING)
    failed = health.failed_recently(now)
    assert failed["count"] == 1
    rows = [(j["id"], j["user"], j["reason_code"]) for j in failed["jobs"]]
    assert rows == [(recent.pk, user.email, "tracker_error")]
    counts = health.jobs_by_status()
    assert counts["failed"] == 2 and counts["downloading"] == 1 and counts["queued"] == 0
    assert set(counts) == set(Status.values)


@pytest.mark.django_db
def test_stuck_jobs_are_unfinished_and_untouched_for_30_minutes(user):
    stuck = JobFactory(user=user, status=Status.WAITING)
    JobFactory(user=user, status=Status.DOWNLOADING)
    done = JobFactory(user=user, status=Status.FAILED)
    Job.objects.filter(pk__in=[stuck.pk, done.pk]).update(updated_at=timezone.now() - dt.timedelta(minutes=45))
    assert list(health.stuck_jobs().values_list("pk", flat=True)) == [stuck.pk]


@pytest.mark.django_db
def test_queue_depth_counts_waiting_tasks():
    depth = health.queue_depth()
    assert depth["error"] == ""
    if Conf.ORM:
        before = depth["size"]
        OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x")
        OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="y")
        assert health.queue_depth() == {"broker": "orm", "size": before + 2, "error": ""}
    else:
        assert isinstance(depth["size"], int)


@pytest.mark.django_db
def test_task_failures_show_the_last_line_of_the_traceback():
    now = timezone.now()
    for i in range(12):
        Task.objects.create(
            id=f"{i:032d}", name=f"task-{i}", func="downloads.tasks.sync", started=now, success=False,
            stopped=now + dt.timedelta(seconds=i), result="Traceback (most recent call last):\n  ...\nValueError: boom",
        )
    Task.objects.create(id="f" * 32, name="fine", func="downloads.tasks.sync", started=now, stopped=now,
                        success=True, result=None)
    failures = health.task_failures()
    assert len(failures) == 10
    assert failures[0]["name"] == "task-11"
    assert {f["error"] for f in failures} == {"ValueError: boom"}


@pytest.mark.django_db
def test_health_page_renders_for_staff(admin_client, settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT = 60
    _beat("engine", "engine@dead:1", 3600)
    job = JobFactory(status=Status.FAILED, finished_at=timezone.now())
    response = admin_client.get("/admin/health/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="health-stale"' in body and "engine@dead:1" in body
    assert reverse("admin:downloads_job_change", args=[job.pk]) in body
    assert "No live engine process" in body


@pytest.mark.django_db
def test_health_json_for_monitoring(admin_client):
    _beat("worker", "worker@a:1", 1)
    response = admin_client.get("/admin/health/?format=json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    data = response.json()
    assert data["ok"] is True
    assert {"queue", "heartbeats", "relays", "failed_last_hour", "jobs_by_status", "task_failures",
            "stuck_jobs", "max_event_id"} <= set(data)
    assert data["heartbeats"][0]["name"] == "worker@a:1"


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?format=json"])
def test_health_is_staff_only(client, user, query):
    assert client.get(f"/admin/health/{query}").status_code == 302
    client.force_login(user)
    response = client.get(f"/admin/health/{query}")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_admin_index_links_the_health_page(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert 'href="/admin/health/"' in body


@pytest.mark.django_db
def test_health_api_for_monitors_with_an_admin_key(admin_user, user):
    from rest_framework.test import APIClient

    from tests.accounts.factories import ApiKeyFactory

    ApiKeyFactory(user=admin_user, raw="flt_monitor_admin_key")
    ApiKeyFactory(user=user, raw="flt_monitor_user_key")
    client = APIClient()
    body = client.get("/api/v1/admin/health/", HTTP_X_API_KEY="flt_monitor_admin_key").json()
    assert "ok" in body and "queue" in body
    response = client.get("/api/v1/admin/health/", HTTP_X_API_KEY="flt_monitor_user_key")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


@pytest.mark.django_db
def test_engines_show_torrents_and_rates_from_their_heartbeat(admin_client, settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT = 60
    _beat("engine", "engine@box", 2, torrents=3, downloading=2, seeding=1, paused=0, download_rate=2 * 1024 * 1024,
          upload_rate=512, listen_port=6881)
    _beat("worker", "worker@box:1", 1)
    [engine] = health.engines(health.heartbeats())
    assert engine["name"] == "engine@box" and engine["torrents"] == 3 and not engine["stale"]
    assert engine["download_rate_human"] == "2.0 MiB/s"
    body = admin_client.get("/admin/health/").content.decode()
    assert "Built-in engines" in body and "2.0 MiB/s" in body and "6881" in body
    assert admin_client.get("/admin/health/?format=json").json()["engines"][0]["seeding"] == 1
