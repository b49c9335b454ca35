"""/metrics: who may scrape, the database facts, in-process histograms, and several processes' files."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config import metrics as config_metrics
from downloads import services
from downloads.models import ProcessHeartbeat, Status
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobFactory

ADMIN_KEY = "flt_metrics_admin_key"


def parse(body: bytes) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def families(body: bytes) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(body.decode())}


@pytest.fixture
def scrape(client, admin_user):
    ApiKeyFactory(user=admin_user, raw=ADMIN_KEY)

    def get() -> bytes:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {ADMIN_KEY}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.content

    return get


def value(samples: dict, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_refuse_anonymous_and_non_admin_keys(client, user, settings):
    settings.METRICS_ALLOWED_IPS = []
    ApiKeyFactory(user=user, raw="flt_metrics_user_key")
    for headers in ({}, {"HTTP_AUTHORIZATION": "Token flt_metrics_user_key"}, {"HTTP_X_API_KEY": "nonsense"},
                    {"HTTP_X_FORWARDED_FOR": "127.0.0.1"}):
        response = client.get("/metrics", **headers)
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    client.force_login(user)
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_allow_an_admin_key_an_admin_session_and_listed_addresses(client, admin_user, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.0.2.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.8").status_code == 403
    ApiKeyFactory(user=admin_user, raw=ADMIN_KEY)
    assert client.get("/metrics", HTTP_X_API_KEY=ADMIN_KEY).status_code == 200
    client.force_login(admin_user)
    assert client.get("/metrics").status_code == 200


# --- database facts -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_job_figures_come_from_the_database(scrape, user):
    now = timezone.now()
    JobFactory(user=user, status=Status.DOWNLOADING)
    JobFactory(user=user, backend="seedr", status=Status.WAITING, reason_code="seedr_auth_expired")
    queued = JobFactory(user=user, backend="engine", status=Status.QUEUED)
    type(queued).objects.filter(pk=queued.pk).update(updated_at=now - dt.timedelta(minutes=20))
    JobFactory(user=user, status=Status.FAILED, reason_code="tracker_error", finished_at=now)
    JobFactory(user=user, status=Status.COMPLETED, finished_at=now)
    samples = parse(scrape())
    assert value(samples, "flotilla_jobs", status="downloading") == 1
    assert value(samples, "flotilla_jobs", status="paused") == 0  # every status is present
    assert value(samples, "flotilla_jobs_waiting", backend="engine") == 1
    assert value(samples, "flotilla_jobs_waiting", backend="seedr") == 1
    assert value(samples, "flotilla_jobs_waiting_oldest_seconds", backend="engine") == pytest.approx(1200, abs=5)
    assert value(samples, "flotilla_jobs_waiting_reason", backend="seedr", reason="seedr_auth_expired") == 1
    assert value(samples, "flotilla_jobs_finished_last_hour", outcome="failed") == 1
    assert value(samples, "flotilla_jobs_finished_last_hour", outcome="completed") == 1
    assert value(samples, "flotilla_jobs_failed_last_hour_by_code", code="tracker_error") == 1
    assert ("flotilla_task_queue_depth", frozenset()) in samples
    assert value(samples, "flotilla_task_queue_up") == 1
    assert value(samples, "flotilla_disk_free_bytes", dir="downloads") > 0


@pytest.mark.django_db
def test_processes_engines_and_relays_from_heartbeats(scrape, settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT, settings.ENGINE_MAX_TORRENTS = 60, 20
    now = timezone.now()

    def beat(kind: str, name: str, age: float, **info) -> None:
        seen = now - dt.timedelta(seconds=age)
        ProcessHeartbeat.objects.create(kind=kind, name=name, last_seen=seen, started_at=seen, info=info)

    beat("engine", "engine@a", 1, torrents=5, download_rate=1000, upload_rate=20)
    beat("engine", "engine@b", 300, torrents=1)
    beat("web", "web@a:1", 1, cursor=0, last_lag_ms=250.0)
    samples = parse(scrape())
    assert value(samples, "flotilla_engine_slots_used", engine="engine@a") == 5
    assert value(samples, "flotilla_engine_slots_capacity", engine="engine@a") == 20
    assert value(samples, "flotilla_engine_download_rate_bytes", engine="engine@a") == 1000
    assert value(samples, "flotilla_process_up", kind="engine", name="engine@a") == 1
    assert ("flotilla_process_up", frozenset({"kind": "engine", "name": "engine@b"}.items())) in samples
    assert value(samples, "flotilla_process_up", kind="engine", name="engine@b") == 0
    assert value(samples, "flotilla_processes_live", kind="engine") == 1
    assert value(samples, "flotilla_process_heartbeat_age_seconds", kind="engine", name="engine@b") >= 300
    assert value(samples, "flotilla_relay_lag_seconds", process="web@a:1") == 0.25


# --- in-process observations ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_job_ending_observes_its_duration_and_failure_code(scrape, user, django_capture_on_commit_callbacks):
    before = parse(scrape())
    job = JobFactory(user=user, backend="server:12", status=Status.DOWNLOADING,
                     started_at=timezone.now() - dt.timedelta(seconds=90))
    with django_capture_on_commit_callbacks(execute=True):
        services.change_status(job, Status.FAILED, reason_code="server_unreachable", reason="gone")
    job2 = JobFactory(user=user, status=Status.DOWNLOADING)
    with django_capture_on_commit_callbacks(execute=True):
        services.change_status(job2, Status.PAUSED)  # not an ending: nothing observed
    after = parse(scrape())
    labels = {"backend": "server", "outcome": "failed"}  # the backend's kind, not one series per server
    count = "flotilla_job_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 1
    assert value(after, "flotilla_job_duration_seconds_bucket", le="60.0", **labels) == value(
        before, "flotilla_job_duration_seconds_bucket", le="60.0", **labels)  # 90 s is not under 60 s
    assert value(after, "flotilla_job_duration_seconds_bucket", le="120.0", **labels) - value(
        before, "flotilla_job_duration_seconds_bucket", le="120.0", **labels) == 1
    failures = "flotilla_job_failures_total"
    assert value(after, failures, backend="server", code="server_unreachable") - value(
        before, failures, backend="server", code="server_unreachable") == 1
    assert value(after, count, backend="engine", outcome="paused") == 0


@pytest.mark.django_db
def test_a_rolled_back_ending_is_not_observed(scrape, user, django_capture_on_commit_callbacks):
    before = parse(scrape())
    job = JobFactory(user=user, backend="engine", status=Status.DOWNLOADING)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.change_status(job, Status.COMPLETED)
    assert callbacks  # registered for after the commit, which here never comes
    after = parse(scrape())
    count = "flotilla_job_duration_seconds_count"
    assert value(after, count, backend="engine", outcome="completed") == value(
        before, count, backend="engine", outcome="completed")


@pytest.mark.django_db
def test_http_latency_is_labelled_by_route_pattern(scrape, client, user):
    client.force_login(user)
    job = JobFactory(user=user)
    assert client.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    samples = parse(scrape())
    routes = {dict(labels).get("route") for (name, labels) in samples
              if name == "flotilla_http_request_duration_seconds_count"}
    assert "api/v1/jobs/<int:pk>/" in routes or any(r and "jobs/<" in r for r in routes), routes
    assert not any(r and str(job.pk) in r.split("/") for r in routes)  # never the raw path
    assert families(scrape())["flotilla_http_request_duration_seconds"] == "histogram"


# --- several processes ----------------------------------------------------------------------------


OBSERVE = (
    "from downloads import metrics as m; "
    "m.JOB_DURATION.labels('engine', 'completed').observe(5); "
    "m.JOB_DURATION.labels('engine', 'completed').observe(7); "
    "m.JOB_FAILURES.labels('seedr', 'seedr_transfer_failed').inc()"
)


@pytest.mark.django_db
def test_observations_of_other_processes_are_summed_and_kept_after_they_exit(scrape, tmp_path, monkeypatch):
    """A worker (here: a `manage.py shell`) observes into its own file; the web process's scrape sums it,
    and once that process has exited its counts are folded into the host's file, not lost or doubled."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    env = procs.process_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(shared))
    for _ in range(2):
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", OBSERVE], cwd=procs.ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert len(list(shared.glob("histogram_*.db"))) == 2  # one file per process
    for _ in range(2):  # the first scrape folds the dead files; the second must read the same totals
        samples = parse(scrape())
        assert value(samples, "flotilla_job_duration_seconds_count", backend="engine", outcome="completed") == 4
        assert value(samples, "flotilla_job_duration_seconds_sum", backend="engine", outcome="completed") == 24
        assert value(samples, "flotilla_job_failures_total", backend="seedr", code="seedr_transfer_failed") == 2
        left = sorted(p.name for p in shared.glob("*.db"))
        mine = f"-{os.getpid()}.db"
        assert [n for n in left if not n.endswith(mine)] == [
            f"counter_{config_metrics._HOST}-dead.db", f"histogram_{config_metrics._HOST}-dead.db"]
