"""django-q2 entry points of the Seedr app (thin wrappers through the spine's runner `downloads.tasks.task`)."""

from __future__ import annotations

import logging

from django.conf import settings

from downloads.tasks import task

log = logging.getLogger(__name__)
INSIGHTS_SCHEDULE = "flotilla.seedr_insights"


@task
def refresh_insights(user_id: int | None = None) -> int:
    """Account insights: one user's (after connecting) or every connected account's (scheduled)."""
    from seedr import client, services
    from seedr.models import SeedrAccount

    if user_id is None:
        return services.refresh_all_insights()
    account = SeedrAccount.objects.filter(user_id=user_id).first()
    if account is None or not account.is_connected:
        return 0
    try:
        services.refresh_insights(account)
    except client.SeedrProblem as exc:
        log.info("seedr insights refresh failed", extra={"user": user_id, "code": exc.code})
        return 0
    return 1


def ensure_schedules(**_kwargs) -> None:
    """The scheduled insights refresh, kept in step with SEEDR_INSIGHTS_MINUTES after every migrate."""
    from django_q.models import Schedule

    if not settings.SEEDR_ENABLED:
        Schedule.objects.filter(name=INSIGHTS_SCHEDULE).delete()
        return
    Schedule.objects.update_or_create(name=INSIGHTS_SCHEDULE, defaults={
        "func": "seedr.tasks.refresh_insights", "schedule_type": Schedule.MINUTES,
        "minutes": max(1, settings.SEEDR_INSIGHTS_MINUTES), "repeats": -1,
    })
