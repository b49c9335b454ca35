"""Moving queued jobs to their backends and syncing running ones: the worker's scheduled loop."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.db.models import Q
from django.utils import timezone

from billing.services import has_free_slot
from downloads import backends, services
from downloads.models import ACTIVE, Job, Status

log = logging.getLogger(__name__)

NO_BACKEND = "no_backend"
WAITING_FOR_SLOT = "waiting_for_slot"
BACKEND_CRASHED = "backend_crashed"
RETRY_BASE_SECONDS = 10
RETRY_MAX_SECONDS = 15 * 60


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff for transient backend errors: 10 s, 20 s, 40 s … capped at 15 minutes."""
    return dt.timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


def dispatch_queued(limit: int = 500) -> int:
    """Submit queued jobs whose backend pushes (Seedr, servers); say why the others wait. Returns submits."""
    submitted = 0
    full: set[int] = set()  # users found without a free slot: their later jobs wait without another query
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    queued = Job.objects.filter(due, status=Status.QUEUED).select_related("user").order_by("id")[:limit]
    for job in queued:
        backend = backends.get_backend(job.backend)
        if backend is None:
            services.set_reason(
                job, NO_BACKEND, f"No '{backends.kind_of(job.backend)}' backend is running yet; "
                "the job starts as soon as one is available.",
            )
            continue
        if backend.pulls_jobs:
            continue  # the engine claims its own jobs, checking slots itself
        if job.user_id in full or not has_free_slot(job.user):
            full.add(job.user_id)
            services.set_reason(job, WAITING_FOR_SLOT, "Waiting for one of your active downloads to finish.")
            continue
        if _submit(backend, job):
            submitted += 1
    return submitted


def _submit(backend: backends.Backend, job: Job) -> bool:
    try:
        # Claim first (conditional update): two workers never submit the same job.
        services.change_status(job, Status.STARTING, reason_code="submitting", reason="Handing to the backend.")
    except services.StaleJob:
        return False
    try:
        backend.submit(job)
    except backends.BackendError as exc:
        job.refresh_from_db()
        if exc.permanent:
            services.fail(job, exc.code, exc.message)
        elif job.status == Status.STARTING:
            attempts = job.attempts + 1
            delay = retry_delay(attempts)
            services.change_status(
                job, Status.QUEUED, reason_code=exc.code,
                reason=f"{exc.message} Retrying in {int(delay.total_seconds())} s.",
                attempts=attempts, next_attempt_at=timezone.now() + delay,
            )
        return False
    except Exception:
        # A bug in a backend must neither leave the job claimed ("starting") forever nor stop the
        # dispatch of everyone else's jobs. The traceback goes to the log, not to the user.
        log.exception("backend submit crashed", extra={"job": job.pk, "backend": job.backend})
        job.refresh_from_db()
        if job.status == Status.STARTING:
            services.fail(job, BACKEND_CRASHED, "The backend failed unexpectedly; retry the job later.")
        return False
    if job.attempts or job.next_attempt_at:
        Job.objects.filter(pk=job.pk).update(attempts=0, next_attempt_at=None)
    return True


def backend_filter(kind: str) -> Q:
    return Q(backend=kind) | Q(backend__startswith=f"{kind}:")


def sync_running() -> int:
    """One `sync` per backend group (account/server), never one remote call per job. Returns groups synced."""
    synced = 0
    for kind, backend in backends.registered().items():
        if backend.pulls_jobs:
            continue
        jobs = Job.objects.filter(backend_filter(kind), status__in=ACTIVE | {Status.PAUSED}).select_related("user")
        groups: dict[object, list[Job]] = defaultdict(list)
        for job in jobs:
            groups[backend.group_key(job)].append(job)
        for key, group in groups.items():
            try:
                backend.sync(group)
                synced += 1
            except Exception:  # one broken account/server must never stop the others
                log.exception("backend sync failed", extra={"backend": kind, "group": str(key)})
    return synced
