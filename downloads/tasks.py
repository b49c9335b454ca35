"""django-q2 entry points: thin wrappers that call services. Tasks take ids and primitives only.

Every task runs through `task`, the one runner wrapper: it gives the task's log lines a request id (the
enqueuing request's, when there is one, so a user's click and the worker's reaction share it), logs the
outcome and lets failures reach django-q2 (which records them for the health page).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from config.logging import request_id_var
from downloads import bring_home as road_home
from downloads import dispatch as dispatching
from downloads import failover, finish, heartbeats, retention
from downloads.models import EventKind, JobEvent, ProcessHeartbeat

log = logging.getLogger(__name__)


def task(func: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(func)
    def run(*args, request_id: str | None = None, **kwargs) -> int:
        token = request_id_var.set(request_id or f"task-{uuid.uuid4().hex[:16]}")
        started = time.monotonic()
        try:
            result = func(*args, **kwargs)
        except Exception:
            log.exception("task failed", extra={"task": func.__name__})
            raise
        else:
            # Quiet when there was nothing to do: dispatch and sync run every minute.
            log.log(logging.INFO if result else logging.DEBUG, "task done",
                    extra={"task": func.__name__, "result": result,
                           "duration_ms": round((time.monotonic() - started) * 1000, 1)})
            return result
        finally:
            request_id_var.reset(token)

    return run


@task
def dispatch() -> int:
    heartbeats.beat(ProcessHeartbeat.Kind.WORKER)
    submitted = dispatching.dispatch_queued()
    if submitted:
        dispatching.start_poller()  # live progress for what was just handed to a remote backend
    return submitted


@task
def sync() -> int:
    return dispatching.sync_running()


@task
def poll_remote() -> int:
    """A link of the remote poller chain (sync every SYNC_INTERVAL s while remote jobs are active)."""
    return dispatching.poll_remote()


@task
def bring_home(job_id: int, holder: str | None = None) -> int:
    """One attempt at bringing a finished job's files home (downloads/bring_home.py), under its lease."""
    return road_home.run(job_id, holder)


@task
def postprocess(job_id: int, holder: str | None = None) -> int:
    """Run the post-processor that claimed a job (downloads/finish.py), under its lease."""
    return finish.run_postprocess(job_id, holder)


@task
def sweep_runs() -> int:
    """Scheduled: bring-home and post-processing runs whose worker died (lease expired) or whose retry is due."""
    return road_home.sweep() + finish.sweep_processing()


@task
def fail_over_stuck() -> int:
    """Scheduled: move stalled jobs and jobs on a backend offline past the grace time (their policy's)."""
    return failover.sweep()


@task
def prune_progress_events() -> int:
    """Progress ticks are only useful live; status changes and messages are history and stay."""
    cutoff = timezone.now() - dt.timedelta(hours=settings.PROGRESS_EVENT_RETENTION_HOURS)
    deleted, _ = JobEvent.objects.filter(kind=EventKind.PROGRESS, created_at__lt=cutoff).delete()
    return deleted


@task
def apply_retention() -> int:
    return retention.apply_retention()


@task
def forget_stale_heartbeats() -> int:
    """Processes that stopped a day ago are history, not health."""
    return heartbeats.forget_stale(timezone.now() - dt.timedelta(days=1))
