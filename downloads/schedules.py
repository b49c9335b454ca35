"""The worker's recurring tasks, kept in step with settings after every migrate."""

from __future__ import annotations

SCHEDULES = {
    # name: (task path, cadence)
    "flotilla.dispatch": ("downloads.tasks.dispatch", "seconds"),
    "flotilla.sync": ("downloads.tasks.sync", "seconds"),
    # Restarts the sub-minute remote poller chain if it died; exits at once when a link holds the lease.
    "flotilla.poll_remote": ("downloads.tasks.poll_remote", "seconds"),
    # Bring-home and post-processing runs of a killed worker (expired lease) or due for a retry.
    "flotilla.sweep_runs": ("downloads.tasks.sweep_runs", "seconds"),
    # Fail-over of stalled jobs and of jobs on a backend offline past its grace time (downloads/failover.py).
    "flotilla.failover": ("downloads.tasks.fail_over_stuck", "seconds"),
    "flotilla.prune_progress_events": ("downloads.tasks.prune_progress_events", "hourly"),
    "flotilla.retention": ("downloads.tasks.apply_retention", "hourly"),
    "flotilla.forget_stale_heartbeats": ("downloads.tasks.forget_stale_heartbeats", "hourly"),
    # "Play without downloading" jobs idle past STREAM_IDLE_MINUTES; the preload queue's loop, if it died.
    "flotilla.remove_idle_streams": ("streaming.tasks.remove_idle_streams", "seconds"),
    "flotilla.preload": ("streaming.tasks.preload", "seconds"),
}


def ensure_schedules(**_kwargs) -> None:
    from django_q.models import Schedule

    for name, (func, cadence) in SCHEDULES.items():
        if cadence == "seconds":
            # django-q2 schedules in minutes; sub-minute cadence comes from repeats of a 1-minute schedule
            # plus the on-commit kick after every job change, so dispatching feels immediate anyway.
            defaults = {"func": func, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1}
        else:
            defaults = {"func": func, "schedule_type": Schedule.HOURLY, "repeats": -1}
        Schedule.objects.update_or_create(name=name, defaults=defaults)
