"""Moving queued jobs to their backends and syncing running ones: the worker's scheduled loop."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from billing.services import has_free_slot
from downloads import backends, leases, retries, services
from downloads.models import ACTIVE, Job, Status

log = logging.getLogger(__name__)

NO_BACKEND = "no_backend"
WAITING_FOR_SLOT = "waiting_for_slot"
BACKEND_CRASHED = "backend_crashed"


def dispatch_queued(limit: int = 500) -> int:
    """Submit queued jobs whose backend pushes (Seedr, servers); say why the others wait. Returns submits."""
    submitted = 0
    full: set[int] = set()  # users found without a free slot: their later jobs wait without another query
    puller_up: dict[str, bool] = {}  # pulling backends (the engine): is any of their processes alive?
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
            # The engine claims its own jobs, checking slots itself; here we only say when none is running.
            kind = backends.kind_of(job.backend)
            if kind not in puller_up:
                puller_up[kind] = backend.available()
            if not puller_up[kind]:
                services.set_reason(job, NO_BACKEND, f"No {backend.label.lower()} is running right now; the job "
                                    "starts as soon as one is.")
            continue
        if not slot_for(job, full):
            continue
        if (wait := backend.may_start(job)) is not None:
            services.set_reason(job, wait.code, wait.message)
            continue
        if _submit(backend, job):
            submitted += 1
    return submitted


def slot_for(job: Job, full: set[int]) -> bool:
    """Whether the job's owner has a free plan slot; if not, the job says it waits for one.

    `full` collects the users found without a slot during one pass, so their later jobs cost no query.
    Shared by the dispatcher (pushing backends) and the engine's claims (pulling)."""
    if job.user_id in full or not has_free_slot(job.user):
        full.add(job.user_id)
        services.set_reason(job, WAITING_FOR_SLOT, "Waiting for one of your active downloads to finish.")
        return False
    return True


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
        attempts = job.attempts + 1
        if exc.permanent:
            services.fail(job, exc.code, exc.message)
        elif job.status == Status.STARTING and retries.exhausted(attempts):
            services.fail(job, retries.RETRIES_EXHAUSTED, retries.exhausted_message(attempts, exc.message),
                          last_code=exc.code)
        elif job.status == Status.STARTING:
            delay = retries.retry_delay(attempts)
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


# --- the remote poller: sub-minute syncs while remote jobs are active ------------------------------

POLL_LEASE = "downloads.poll_remote"
POLL_BUDGET_SECONDS = 50.0  # one link of the chain; well under the cluster's task timeout


def remote_jobs_active() -> bool:
    """Whether any job of a pushing backend (Seedr, servers) is active and so worth polling."""
    kinds = [kind for kind, backend in backends.registered().items() if not backend.pulls_jobs]
    if not kinds:
        return False
    pushing = Q()
    for kind in kinds:
        pushing |= backend_filter(kind)
    return Job.objects.filter(pushing, status__in=ACTIVE).exists()


def poll_remote(*, budget: float = POLL_BUDGET_SECONDS, sleep: Callable[[float], None] = time.sleep,
                enqueue_successor: Callable[[], None] | None = None) -> int:
    """Run `sync_running` every SYNC_INTERVAL seconds while remote jobs are active, for at most `budget`.

    Only the holder of the `POLL_LEASE` polls, so at most one chain runs across all workers. A link that
    runs out of budget while jobs are still active releases the lease and enqueues its successor; if the
    chain dies (a killed worker) its lease expires and the per-minute schedule starts a new one.
    Returns the number of sync rounds (0: another chain holds the lease, or nothing was active).
    """
    interval = max(0.05, settings.SYNC_INTERVAL)
    ttl = interval * 3 + 10
    holder = leases.new_holder()
    if not remote_jobs_active() or not leases.claim(POLL_LEASE, holder, ttl):
        return 0
    rounds, deadline = 0, time.monotonic() + budget
    try:
        while True:
            sync_running()
            rounds += 1
            if time.monotonic() + interval > deadline or not remote_jobs_active():
                break
            sleep(interval)
            leases.claim(POLL_LEASE, holder, ttl)  # renew
    finally:
        leases.release(POLL_LEASE, holder)
    if remote_jobs_active():
        (enqueue_successor or start_poller)()
    return rounds


def start_poller() -> bool:
    """Enqueue a poller link unless one holds the lease or nothing remote is active. Returns enqueued."""
    if leases.is_held(POLL_LEASE) or not remote_jobs_active():
        return False
    from django_q.tasks import async_task

    try:
        async_task("downloads.tasks.poll_remote", group="poll_remote")
    except Exception:  # the per-minute schedule starts one anyway
        log.warning("could not enqueue the remote poller", exc_info=True)
        return False
    return True
