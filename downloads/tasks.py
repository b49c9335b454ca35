"""django-q2 entry points: thin wrappers that call services. Tasks take ids and primitives only."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from billing import services as billing
from downloads import dispatch as dispatching
from downloads import heartbeats
from downloads.models import EventKind, JobEvent, ProcessHeartbeat


def dispatch() -> int:
    heartbeats.beat(ProcessHeartbeat.Kind.WORKER)
    return dispatching.dispatch_queued()


def sync() -> int:
    return dispatching.sync_running()


def prune_progress_events() -> int:
    """Progress ticks are only useful live; status changes and messages are history and stay."""
    cutoff = timezone.now() - dt.timedelta(hours=settings.PROGRESS_EVENT_RETENTION_HOURS)
    deleted, _ = JobEvent.objects.filter(kind=EventKind.PROGRESS, created_at__lt=cutoff).delete()
    return deleted


def apply_retention() -> int:
    return billing.apply_retention()


def forget_stale_heartbeats() -> int:
    """Processes that stopped a day ago are history, not health."""
    return heartbeats.forget_stale(timezone.now() - dt.timedelta(days=1))
