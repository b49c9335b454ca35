"""The admin health page and its JSON twin, and the figures behind them (downloads/health.py)."""

from __future__ import annotations

import datetime as dt
import time

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


# --- the rule for `ok`, waiting jobs, capacity, error rate (issue 10) ----------------------------


@pytest.mark.django_db
def test_one_stale_process_makes_ok_false_even_when_its_kind_has_a_live_copy(settings):
    settings.WORKER_HEARTBEAT_TIMEOUT = 60
    _beat("worker", "worker@a:1", 283)  # the report: a worker 283 s silent, while another beat
    _beat("worker", "worker@b:7", 2)
    snap = health.snapshot()
    assert snap["kinds_down"] == [] and snap["stale_processes"] == ["worker@a:1"]
    assert snap["ok"] is False


@pytest.mark.django_db
def test_a_restart_on_the_same_host_replaces_the_stale_row(settings):
    settings.WORKER_HEARTBEAT_TIMEOUT = 60
    _beat("worker", "worker@a:1", 600)
    _beat("worker", "worker@a:2", 2)  # started after worker@a:1 went silent: a restart
    snap = health.snapshot()
    assert snap["ok"] is True and snap["stale_processes"] == []
    assert {b["name"]: b["replaced"] for b in snap["heartbeats"]} == {"worker@a:1": True, "worker@a:2": False}


@pytest.mark.django_db
def test_waiting_jobs_per_backend_with_the_oldest_age_and_reasons(user):
    now = timezone.now()
    old = JobFactory(user=user, backend="engine", status=Status.QUEUED)
    JobFactory(user=user, backend="engine", status=Status.WAITING, reason_code="plan_slots")
    JobFactory(user=user, backend="seedr", status=Status.WAITING, reason_code="seedr_login")
    JobFactory(user=user, backend="seedr", status=Status.DOWNLOADING)  # running: not waiting
    Job.objects.filter(pk=old.pk).update(updated_at=now - dt.timedelta(minutes=10))
    rows = {row["backend"]: row for row in health.waiting_jobs(now)}
    assert rows["engine"]["queued"] == 1 and rows["engine"]["waiting"] == 1 and rows["engine"]["total"] == 2
    assert rows["engine"]["oldest_seconds"] == pytest.approx(600, abs=1)
    assert rows["engine"]["reasons"] == {"plan_slots": 1}
    assert rows["seedr"] == {"backend": "seedr", "queued": 0, "waiting": 1, "total": 1,
                             "oldest_seconds": rows["seedr"]["oldest_seconds"], "reasons": {"seedr_login": 1}}
    assert rows["seedr"]["oldest_seconds"] < 60


@pytest.mark.django_db
def test_engine_capacity_is_slots_used_of_max_torrents(settings):
    settings.ENGINE_MAX_TORRENTS = 8
    _beat("engine", "engine@a", 1, torrents=6)
    _beat("engine", "engine@b", 1, torrents=2, max_torrents=4)  # an engine that reports its own capacity
    rows = {e["name"]: e for e in health.engines(health.heartbeats())}
    engine_a = rows["engine@a"]
    assert (engine_a["slots_used"], engine_a["capacity"], engine_a["utilisation"]) == (6, 8, 0.75)
    assert (rows["engine@b"]["slots_used"], rows["engine@b"]["capacity"]) == (2, 4)


@pytest.mark.django_db
def test_error_rate_is_failed_over_finished_in_the_last_hour(user):
    now = timezone.now()
    recent = now - dt.timedelta(minutes=10)
    for status in (Status.FAILED, Status.COMPLETED, Status.COMPLETED, Status.COMPLETED, Status.CANCELLED):
        JobFactory(user=user, status=status, finished_at=recent)
    JobFactory(user=user, status=Status.FAILED, finished_at=now - dt.timedelta(hours=3))  # outside the hour
    assert health.error_rate(now) | {"since": None} == {"since": None, "failed": 1, "finished": 4, "rate": 0.25}
    Job.objects.all().delete()
    assert health.error_rate(now)["rate"] is None


@pytest.mark.django_db
def test_health_page_shows_waiting_capacity_and_error_rate(admin_client, settings):
    settings.ENGINE_MAX_TORRENTS = 20
    _beat("engine", "engine@box", 1, torrents=3)
    JobFactory(backend="seedr", status=Status.WAITING, reason_code="seedr_login")
    JobFactory(status=Status.FAILED, finished_at=timezone.now())
    JobFactory(status=Status.COMPLETED, finished_at=timezone.now())
    body = admin_client.get("/admin/health/").content.decode()
    assert "Jobs waiting to run, per backend" in body and "<code>seedr_login</code>: 1" in body
    assert "3 / 20" in body
    assert "error rate 50 % (1 failed of 2 finished)" in body
    data = admin_client.get("/admin/health/?format=json").json()
    assert data["waiting_jobs"][0]["backend"] == "seedr"
    assert data["error_rate_last_hour"]["rate"] == 0.5
    assert data["engines"][0]["capacity"] == 20


# --- the worker cluster's heartbeat ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_beat_thread_keeps_one_row_for_the_cluster(settings):
    from downloads import heartbeats

    settings.WORKER_HEARTBEAT_TIMEOUT = 60
    stop = heartbeats.start_worker_beat(cluster_pid=4242, interval=0.05)
    try:
        name = heartbeats.process_name("worker")
        assert name.endswith(":4242")
        deadline = time.monotonic() + 10
        seen: set = set()
        while len(seen) < 3 and time.monotonic() < deadline:  # three distinct beats: it keeps beating
            row = ProcessHeartbeat.objects.filter(name=name).values_list("last_seen", flat=True).first()
            if row:
                seen.add(row)
            stop.wait(0.02)  # poll pace only; the loop ends on the condition or the deadline
        assert len(seen) >= 3, "the worker beat thread stopped beating"
        assert list(ProcessHeartbeat.objects.values_list("name", flat=True)) == [name]
    finally:
        stop.set()
        heartbeats._cluster_pid = None


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_worker_cluster_busy_with_long_tasks_stays_fresh(tmp_path, settings):
    """The report: a live worker shown stale (283 s) while its processes ran long tasks. Both worker
    processes of a real qcluster are kept busy; its single row must stay fresh all along."""
    from django_q.tasks import async_task

    from tests import procs

    settings.WORKER_HEARTBEAT_TIMEOUT = 2  # beats every 0.5 s; a task blocking the beat would show at once
    env = procs.process_env(tmp_path, WORKER_PROCESSES="2", WORKER_HEARTBEAT_TIMEOUT="2")
    with procs.qcluster(env, tmp_path) as proc:
        log_path = tmp_path / "qcluster.log"
        busy = [async_task("time.sleep", 6, group="health.busy") for _ in range(2)]
        observed: list[list[tuple]] = []

        def tasks_done() -> bool:
            # wait_ready treats an exception as "not yet", so the invariant is recorded, then asserted.
            beats = [b for b in health.heartbeats() if b["kind"] == "worker"]
            observed.append([(b["name"], b["age_seconds"], b["stale"]) for b in beats])
            return all(procs.task_ran(task_id) for task_id in busy)

        procs.wait_ready(tasks_done, "two 6 s tasks", proc, log_path, timeout=120)
        assert len(observed) > 20  # checked throughout, not once
        bad = [beats for beats in observed if len(beats) != 1 or beats[0][2]]
        assert not bad, f"want one fresh row per cluster all along; got {bad[:3]}"
        assert health.snapshot()["ok"] is True
