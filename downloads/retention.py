"""Retention: the files of finished jobs go once they outlive their owner's plan (billing's policy, the
spine's action: each removal is a job event and an audit row, through services.remove_job_data)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.utils import timezone

from billing.models import Plan
from billing.services import current_plan
from downloads.models import TERMINAL, Job
from downloads.services import remove_job_data


def expired_jobs(now: dt.datetime | None = None) -> Iterator[Job]:
    """Finished jobs whose files outlived their owner's plan retention."""
    now = now or timezone.now()
    candidates = Job.objects.filter(
        status__in=TERMINAL, data_deleted_at__isnull=True, finished_at__isnull=False
    ).select_related("user")
    plans: dict[int, Plan] = {}
    for job in candidates.iterator():
        plan = plans.get(job.user_id) or plans.setdefault(job.user_id, current_plan(job.user))
        if plan.retention_days and job.finished_at + dt.timedelta(days=plan.retention_days) <= now:
            yield job


def apply_retention(now: dt.datetime | None = None) -> int:
    """Remove the files of finished jobs past retention. Returns how many jobs lost their files."""
    count = 0
    for job in expired_jobs(now):
        remove_job_data(job, reason_code="retention", reason="Files removed: the plan's retention period ended.")
        count += 1
    return count
