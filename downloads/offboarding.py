"""A deleted user's jobs: the spine's remover for accounts.offboarding (registered in DownloadsConfig.ready())."""

from __future__ import annotations

from django.conf import settings

from downloads import services as jobs
from downloads.models import Job


def remove_user_jobs(actor, user) -> None:
    """Each job through the job service (cancelled on its backend, files removed, a "deleted" event), then
    whatever is left of the user's download folder."""
    for job in Job.objects.for_user(user).defer("magnet", "torrent"):
        jobs.delete_job(actor, job)
    jobs.remove_tree(settings.DOWNLOADS_DIR / str(user.pk))
