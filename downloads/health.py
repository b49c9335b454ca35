"""Figures for the admin health page and its JSON twin: queue, heartbeats, relay lag, failures.

Plain functions returning JSON-able values, so the page, the `?format=json` monitoring endpoint and the
admin's "stuck" / "failed today" filters all read the same definitions. Every figure is one cheap query
(indexed columns, no full-table scans beyond a GROUP BY on the indexed status).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, QuerySet
from django.utils import timezone

from config.formatting import human_rate
from downloads.models import TERMINAL, Job, JobEvent, ProcessHeartbeat, Status

log = logging.getLogger(__name__)

STUCK_AFTER = dt.timedelta(minutes=30)
FAILED_WINDOW = dt.timedelta(hours=1)
RECENT_LIMIT = 20
# Jobs that exist but do not run yet: what "waiting jobs per backend" counts.
WAITING_STATUSES = (Status.QUEUED, Status.WAITING)
TASK_FAILURE_LIMIT = 10


# --- job querysets shared with the admin filters ---------------------------------------------------


def stuck_jobs(now: dt.datetime | None = None) -> QuerySet[Job]:
    """Unfinished jobs nobody has touched for STUCK_AFTER. Paused jobs are still by design, so not stuck."""
    cutoff = (now or timezone.now()) - STUCK_AFTER
    return Job.objects.exclude(status__in=TERMINAL | {Status.PAUSED}).filter(updated_at__lt=cutoff)


def failed_since(since: dt.datetime) -> QuerySet[Job]:
    return Job.objects.filter(status=Status.FAILED, finished_at__gte=since)


def start_of_today(now: dt.datetime | None = None) -> dt.datetime:
    """Midnight in the server's TIME_ZONE (what an operator means by "today")."""
    local = timezone.localtime(now or timezone.now())
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# --- figures --------------------------------------------------------------------------------------


def queue_depth() -> dict[str, Any]:
    """Tasks waiting in django-q2's broker: the task queue only (jobs waiting for a backend are
    `waiting_jobs`). A broker that cannot be reached is reported, not raised."""
    from django_q.conf import Conf

    if Conf.ORM:
        from django_q.models import OrmQ

        # Includes tasks a worker has pulled but not finished (their row is locked until done).
        return {"broker": "orm", "size": OrmQ.objects.count(), "error": ""}
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        return {"broker": type(broker).__name__.lower(), "size": broker.queue_size(), "error": ""}
    except Exception as exc:  # the page must render exactly when the broker is in trouble
        log.warning("queue size unavailable", exc_info=True)
        return {"broker": "unknown", "size": None, "error": type(exc).__name__}


def stale_after(kind: str) -> int:
    """Seconds without a beat before a process counts as stale (engines and web: ENGINE_HEARTBEAT_TIMEOUT;
    worker clusters: WORKER_HEARTBEAT_TIMEOUT, see downloads/heartbeats.py for their beat)."""
    if kind == ProcessHeartbeat.Kind.WORKER:
        return settings.WORKER_HEARTBEAT_TIMEOUT
    return settings.ENGINE_HEARTBEAT_TIMEOUT


def _host(name: str) -> str:
    """`kind@host:pid` → host; names without that shape (a custom ENGINE_NAME) are their own host."""
    return name.split("@", 1)[-1].rsplit(":", 1)[0] if "@" in name else name


def heartbeats(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Every process heartbeat with its age and whether it is stale (see `stale_after`).

    A stale row is `replaced` when a fresh process of the same kind on the same host started after it
    went silent: that is a restart (a new pid), not an outage. Every other stale row is an alarm.
    """
    now = now or timezone.now()
    rows = []
    for beat in ProcessHeartbeat.objects.order_by("kind", "name"):
        age = max(0.0, (now - beat.last_seen).total_seconds())
        rows.append(
            {
                "kind": beat.kind,
                "name": beat.name,
                "started_at": beat.started_at.isoformat(),
                "last_seen": beat.last_seen.isoformat(),
                "age_seconds": round(age, 1),
                "stale": age > stale_after(beat.kind),
                "replaced": False,
                "info": beat.info,
                "_host": _host(beat.name),
                "_started": beat.started_at,
                "_seen": beat.last_seen,
            }
        )
    for row in rows:
        row["replaced"] = row["stale"] and any(
            not other["stale"] and other["kind"] == row["kind"] and other["_host"] == row["_host"]
            and other["_started"] >= row["_seen"]
            for other in rows
        )
    for row in rows:
        del row["_host"], row["_started"], row["_seen"]
    return rows


def stale_processes(beats: list[dict[str, Any]]) -> list[str]:
    """Names of processes that stopped beating and were not replaced by a restart: each is an alarm."""
    return [beat["name"] for beat in beats if beat["stale"] and not beat["replaced"]]


def max_event_id() -> int:
    return JobEvent.objects.aggregate(m=Max("id"))["m"] or 0


def relay_lag(beats: list[dict[str, Any]], newest_event_id: int) -> list[dict[str, Any]]:
    """Per web process: how many events it has not relayed yet, and its last measured delay."""
    relays = []
    for beat in beats:
        info = beat["info"] if isinstance(beat["info"], dict) else {}
        if beat["kind"] != ProcessHeartbeat.Kind.WEB or "cursor" not in info:
            continue
        cursor = info.get("cursor")
        relays.append(
            {
                "name": beat["name"],
                "cursor": cursor,
                "events_behind": max(0, newest_event_id - cursor) if isinstance(cursor, int) else None,
                "last_lag_ms": info.get("last_lag_ms"),
                "stale": beat["stale"],
            }
        )
    return relays


def engines(beats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per engine process: slots used of its capacity, what its torrents do, rates (from its heartbeat).

    Capacity is the engine's `max_torrents` when its heartbeat says so, else this host's
    ENGINE_MAX_TORRENTS (engines of one install share their settings).
    """
    rows = []
    for beat in beats:
        info = beat["info"] if isinstance(beat["info"], dict) else {}
        if beat["kind"] != ProcessHeartbeat.Kind.ENGINE:
            continue
        used = info.get("torrents", 0) or 0
        capacity = info.get("max_torrents") or settings.ENGINE_MAX_TORRENTS
        rows.append({
            "name": beat["name"],
            "stale": beat["stale"],
            "age_seconds": beat["age_seconds"],
            **{key: info.get(key, 0) for key in ("torrents", "downloading", "seeding", "paused")},
            "slots_used": used,
            "capacity": capacity,
            "utilisation": round(used / capacity, 3) if capacity else None,
            "download_rate": info.get("download_rate", 0),
            "upload_rate": info.get("upload_rate", 0),
            "download_rate_human": human_rate(info.get("download_rate") or 0),
            "upload_rate_human": human_rate(info.get("upload_rate") or 0),
            "listen_port": info.get("listen_port"),
        })
    return rows


def waiting_jobs(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per backend: jobs not running yet (queued, or waiting for a slot, a login, a cleanup), how long the
    oldest has waited, and why they wait. `updated_at` is when a job entered that status: progress never
    touches a job that is not running, and reasons are written without bumping it."""
    now = now or timezone.now()
    rows = (
        Job.objects.filter(status__in=WAITING_STATUSES).order_by()
        .values_list("backend", "status", "reason_code").annotate(n=Count("id"), oldest=Min("updated_at"))
    )
    by_backend: dict[str, dict[str, Any]] = {}
    for backend, status, code, count, oldest in rows:
        entry = by_backend.setdefault(backend, {"backend": backend, "queued": 0, "waiting": 0, "total": 0,
                                                "oldest_seconds": 0.0, "reasons": {}})
        entry[status] += count
        entry["total"] += count
        entry["oldest_seconds"] = max(entry["oldest_seconds"], round((now - oldest).total_seconds(), 1))
        if code:
            entry["reasons"][code] = entry["reasons"].get(code, 0) + count
    return sorted(by_backend.values(), key=lambda entry: entry["backend"])


def error_rate(now: dt.datetime | None = None) -> dict[str, Any]:
    """Failed ÷ finished (completed or failed) over the last FAILED_WINDOW; cancellations are the user's
    choice, not errors, so they count in neither. `rate` is None when nothing finished."""
    since = (now or timezone.now()) - FAILED_WINDOW
    counts = dict(
        Job.objects.filter(finished_at__gte=since, status__in=[Status.COMPLETED, Status.FAILED]).order_by()
        .values_list("status").annotate(n=Count("id"))
    )
    failed, completed = counts.get(Status.FAILED, 0), counts.get(Status.COMPLETED, 0)
    finished = failed + completed
    return {"since": since.isoformat(), "failed": failed, "finished": finished,
            "rate": round(failed / finished, 4) if finished else None}


def failed_recently(now: dt.datetime | None = None, *, limit: int = RECENT_LIMIT) -> dict[str, Any]:
    since = (now or timezone.now()) - FAILED_WINDOW
    jobs = failed_since(since)
    recent = jobs.select_related("user").only(
        "id", "name", "backend", "reason_code", "reason", "finished_at", "user__email"
    ).order_by("-finished_at", "-id")[:limit]
    return {
        "since": since.isoformat(),
        "count": jobs.count(),
        "jobs": [
            {
                "id": job.pk,
                "name": job.name,
                "user": job.user.email,
                "backend": job.backend,
                "reason_code": job.reason_code,
                "reason": job.reason,
                "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            }
            for job in recent
        ],
    }


def failures_by_code(now: dt.datetime | None = None) -> dict[str, int]:
    since = (now or timezone.now()) - FAILED_WINDOW
    return dict(failed_since(since).order_by().values_list("reason_code").annotate(n=Count("id")))


def jobs_by_status() -> dict[str, int]:
    counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in Status.values}


def task_failures(limit: int = TASK_FAILURE_LIMIT) -> list[dict[str, Any]]:
    """The newest failed django-q2 tasks (result = the traceback's last line, shortened)."""
    from django_q.models import Failure

    rows = Failure.objects.order_by("-stopped").values("id", "name", "func", "group", "stopped", "result")[:limit]
    return [
        {
            "id": row["id"],
            "name": row["name"],
            "func": row["func"],
            "group": row["group"],
            "stopped": row["stopped"].isoformat() if row["stopped"] else None,
            "error": _last_line(row["result"]),
        }
        for row in rows
    ]


def task_failures_since(since: dt.datetime) -> int:
    from django_q.models import Failure

    return Failure.objects.filter(stopped__gte=since).count()


def _last_line(result: Any, width: int = 300) -> str:
    lines = [line for line in str(result or "").strip().splitlines() if line.strip()]
    return lines[-1][:width] if lines else ""


def kinds_down(beats: list[dict[str, Any]]) -> list[str]:
    """Kinds of process that have heartbeats but none fresh. A restarted process beats under a new name,
    so the old row going stale alone is not an outage; every copy of a kind being stale is."""
    seen: dict[str, bool] = {}
    for beat in beats:
        seen[beat["kind"]] = seen.get(beat["kind"], False) or not beat["stale"]
    return sorted(kind for kind, alive in seen.items() if not alive)


def snapshot(now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything on the health page, JSON-able. `ok` is False as soon as one process is stale (and was
    not replaced by a restart on its host); `kinds_down` names the kinds with no live copy at all."""
    now = now or timezone.now()
    beats = heartbeats(now)
    newest = max_event_id()
    down = kinds_down(beats)
    stale = stale_processes(beats)
    return {
        "generated_at": now.isoformat(),
        "ok": not down and not stale,
        "kinds_down": down,
        "stale_processes": stale,
        "heartbeat_timeout_seconds": settings.ENGINE_HEARTBEAT_TIMEOUT,
        "worker_heartbeat_timeout_seconds": settings.WORKER_HEARTBEAT_TIMEOUT,
        "queue": queue_depth(),
        "waiting_jobs": waiting_jobs(now),
        "heartbeats": beats,
        "max_event_id": newest,
        "relays": relay_lag(beats, newest),
        "engines": engines(beats),
        "error_rate_last_hour": error_rate(now),
        "failed_last_hour": failed_recently(now),
        "stuck_jobs": stuck_jobs(now).count(),
        "jobs_by_status": jobs_by_status(),
        "task_failures": task_failures(),
    }
