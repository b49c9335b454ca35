"""The job spine's Prometheus figures, and the `/metrics` endpoint that serves them with every process's own.

`SpineCollector` reads the database at scrape time (the same definitions as the health page, in
downloads/health.py), so every figure is right whichever process caused it. `observe_status` is the one
hook in `services.change_status`: when a job ends, its duration and (for failures) its code are counted
in the ending process's multi-process file (see config/metrics.py), once the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
from collections.abc import Iterator

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import config.metrics  # (also sets the multi-process value class before the metrics below exist)
from accounts.authentication import key_from_headers, user_for_key
from downloads import health
from downloads.models import TERMINAL, Job, Status

JOB_DURATION = Histogram(
    "flotilla_job_duration_seconds",
    "From a job's start (or creation, if it never started) to its end, by backend kind and outcome.",
    ["backend", "outcome"],
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200),
)
JOB_FAILURES = Counter(
    "flotilla_job_failures",
    "Jobs that ended failed, by backend kind and reason code.",
    ["backend", "code"],
)


def backend_kind(backend: str) -> str:
    """`server:12` → `server`: one label value per kind of backend, not one per user's server."""
    return backend.split(":", 1)[0]


def observe_status(job: Job, previous: str) -> None:
    """Called by change_status after a move; counts a job reaching a terminal status, after commit (a
    rolled-back ending never happened)."""
    if job.status not in TERMINAL or previous in TERMINAL:
        return
    start = job.started_at or job.created_at
    end = job.finished_at or timezone.now()
    kind, outcome, code = backend_kind(job.backend), str(job.status), job.reason_code or "unknown"

    def record() -> None:
        JOB_DURATION.labels(kind, outcome).observe(max(0.0, (end - start).total_seconds()))
        if outcome == Status.FAILED:
            JOB_FAILURES.labels(kind, code).inc()

    transaction.on_commit(record)


def _gauge(name: str, doc: str, labels: list[str], rows: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in rows:
        family.add_metric(label_values, value)
    return family


class SpineCollector(Collector):
    """Database facts at scrape time: a handful of indexed queries per scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._jobs(now)
        yield from self._processes(now)
        yield from self._queue(now)
        yield from self._disk()

    def _jobs(self, now: dt.datetime) -> Iterator[Metric]:
        yield _gauge("flotilla_jobs", "Jobs by status.", ["status"],
                     [([status], count) for status, count in health.jobs_by_status().items()])
        waiting = health.waiting_jobs(now)
        yield _gauge("flotilla_jobs_waiting", "Jobs queued or waiting (not running yet), per backend.",
                     ["backend"], [([row["backend"]], row["total"]) for row in waiting])
        yield _gauge("flotilla_jobs_waiting_oldest_seconds", "How long the oldest waiting job has waited.",
                     ["backend"], [([row["backend"]], row["oldest_seconds"]) for row in waiting])
        yield _gauge("flotilla_jobs_waiting_reason", "Waiting jobs per backend and reason code.",
                     ["backend", "reason"],
                     [([row["backend"], code], n) for row in waiting for code, n in row["reasons"].items()])
        yield _gauge("flotilla_jobs_stuck", "Unfinished jobs not updated for 30 minutes (paused excluded).", [],
                     [([], health.stuck_jobs(now).count())])
        rate = health.error_rate(now)
        yield _gauge("flotilla_jobs_finished_last_hour", "Jobs that ended completed or failed in the last hour.",
                     ["outcome"], [(["failed"], rate["failed"]), (["completed"], rate["finished"] - rate["failed"])])
        yield _gauge("flotilla_jobs_failed_last_hour_by_code", "Jobs failed in the last hour, by reason code.",
                     ["code"], [([code or "unknown"], n) for code, n in health.failures_by_code(now).items()])

    def _processes(self, now: dt.datetime) -> Iterator[Metric]:
        beats = [beat for beat in health.heartbeats(now) if not beat["replaced"]]
        yield _gauge("flotilla_process_heartbeat_age_seconds", "Seconds since each process last beat.",
                     ["kind", "name"], [([b["kind"], b["name"]], b["age_seconds"]) for b in beats])
        yield _gauge("flotilla_process_up", "1 while a process beats within its timeout, 0 once it is stale.",
                     ["kind", "name"], [([b["kind"], b["name"]], 0 if b["stale"] else 1) for b in beats])
        live: dict[str, int] = {}
        for beat in beats:
            live[beat["kind"]] = live.get(beat["kind"], 0) + (0 if beat["stale"] else 1)
        yield _gauge("flotilla_processes_live", "Live processes per kind (0: that kind is down).", ["kind"],
                     [([kind], n) for kind, n in sorted(live.items())])
        engines = health.engines(beats)
        for field, name, doc in (
            ("slots_used", "flotilla_engine_slots_used", "Torrents an engine holds."),
            ("capacity", "flotilla_engine_slots_capacity", "Torrents an engine may hold (ENGINE_MAX_TORRENTS)."),
            ("download_rate", "flotilla_engine_download_rate_bytes", "An engine's download rate, bytes/s."),
            ("upload_rate", "flotilla_engine_upload_rate_bytes", "An engine's upload rate, bytes/s."),
        ):
            yield _gauge(name, doc, ["engine"], [([e["name"]], e[field] or 0) for e in engines])
        relays = health.relay_lag(beats, health.max_event_id())
        yield _gauge("flotilla_relay_events_behind", "Events a web process has not relayed yet.", ["process"],
                     [([r["name"]], r["events_behind"]) for r in relays if r["events_behind"] is not None])
        yield _gauge("flotilla_relay_lag_seconds", "Delay of the last event a web process relayed.", ["process"],
                     [([r["name"]], r["last_lag_ms"] / 1000) for r in relays if r["last_lag_ms"] is not None])

    def _queue(self, now: dt.datetime) -> Iterator[Metric]:
        queue = health.queue_depth()
        yield _gauge("flotilla_task_queue_up", "1 when the task broker answered.", [],
                     [([], 0 if queue["size"] is None else 1)])
        if queue["size"] is not None:
            yield _gauge("flotilla_task_queue_depth", "Tasks waiting in django-q2's broker.", [],
                         [([], queue["size"])])
        yield _gauge("flotilla_task_failures_last_hour", "django-q2 tasks that failed in the last hour.", [],
                     [([], health.task_failures_since(now - health.FAILED_WINDOW))])

    def _disk(self) -> Iterator[Metric]:
        """The filesystems of DATA_DIR (database, keys, state) and of the downloads (often another disk)."""
        usage = {label: shutil.disk_usage(path)
                 for label, path in (("data", settings.DATA_DIR), ("downloads", settings.DOWNLOADS_DIR))}
        yield _gauge("flotilla_disk_free_bytes", "Free bytes on the filesystem holding a directory.", ["dir"],
                     [([label], u.free) for label, u in usage.items()])
        yield _gauge("flotilla_disk_size_bytes", "Size of the filesystem holding a directory.", ["dir"],
                     [([label], u.total) for label, u in usage.items()])


# --- the scrape: who may read it, and the endpoint ----------------------------------------------


def _ip_allowed(address: str) -> bool:
    """REMOTE_ADDR only (behind a proxy, daphne --proxy-headers puts the client there): a forwarded
    header is written by the client and proves nothing."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS)


def may_scrape(request: HttpRequest) -> bool:
    """An address in METRICS_ALLOWED_IPS, an admin's API key (`Authorization: Token …` / `X-Api-Key`),
    or an admin's console session."""
    if _ip_allowed(request.META.get("REMOTE_ADDR", "")):
        return True
    raw = key_from_headers(request.headers)
    if raw is not None:
        owner = user_for_key(raw)
        return owner is not None and owner.is_admin
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_admin)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """/metrics: every process's observations (config.metrics) and the spine's database facts."""
    if not may_scrape(request):
        return JsonResponse(
            {"code": "permission_denied",
             "detail": "Metrics need an admin's API key or an address listed in METRICS_ALLOWED_IPS."},
            status=403,
        )
    # The classic text format (0.0.4): what every Prometheus 2.x and other scrapers read.
    return HttpResponse(config.metrics.render(SpineCollector()), content_type=CONTENT_TYPE_PLAIN_0_0_4)
