"""What a user's jobs use (storage, active slots), measured by the spine for billing's quota rules.

billing holds the plans and the rules and sits below the spine, which checks quotas through it, so billing
never reads jobs: DownloadsConfig.ready() registers `JobUsage` as billing's source of these numbers.
"""

from __future__ import annotations

from django.db.models import Sum
from django.db.models.functions import Coalesce

from downloads.models import Job


class JobUsage:
    def storage_committed(self, user, *, exclude_job_id: int | None = None) -> int:
        """Bytes the user's jobs hold or will hold on disk (full size of unfinished jobs: they will grow)."""
        jobs = Job.objects.filter(user=user, data_deleted_at__isnull=True)
        if exclude_job_id:
            jobs = jobs.exclude(pk=exclude_job_id)
        return jobs.aggregate(total=Coalesce(Sum(Coalesce("size_bytes", "downloaded_bytes")), 0))["total"]

    def active_jobs(self, user) -> int:
        return Job.objects.for_user(user).active().count()
