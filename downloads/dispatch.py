"""Moving queued jobs to their backends and syncing running ones: the worker's scheduled loop."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from billing.services import default_plan, has_free_slot, slot_limit_sql
from config.tasks import enqueue
from downloads import backends, failover, leases, retries, services
from downloads.models import ACTIVE, Job, Status

log = logging.getLogger(__name__)

NO_BACKEND = "no_backend"
WAITING_FOR_SLOT = "waiting_for_slot"
BACKEND_CRASHED = "backend_crashed"


# Jobs of one (user, backend) considered per tick; groups are served in turn (round robin), oldest first.
PER_GROUP = 3
# Queued jobs whose "why am I waiting" sentence is brought up to date per tick (only those it changes).
EXPLAIN_LIMIT = 200


def dispatch_queued(limit: int = 200) -> int:
    """Submit queued jobs whose backend pushes (Seedr, servers), fairly; say why the others wait.

    What cannot start is filtered in SQL (pulling backends, users at their slot limit, jobs in backoff), and
    the candidates come round robin: every (user, backend) group's oldest job first, then every group's second
    … so one user's long queue never delays another's job. The cost of a tick does not grow with the queued
    jobs of users who cannot start. Returns the number of jobs submitted.
    """
    default_limit = default_plan().max_active_jobs
    _explain_unstartable(default_limit)
    submitted = 0
    started: dict[int, int] = defaultdict(int)  # submits per user this tick, against the free slots SQL saw
    waiting: dict[tuple[int, str], backends.Wait] = {}  # a group whose head must wait: the rest waits too
    for job in _candidates(limit, default_limit):
        group = (job.user_id, job.backend)
        if job.slot_limit and job.active_count + started[job.user_id] >= job.slot_limit:
            continue  # filled earlier in this tick; the next tick explains it
        backend = backends.get_backend(job.backend)
        wait = waiting.get(group) or backend.may_start(job)
        if wait is not None:
            waiting[group] = wait
            services.set_reason(job, wait.code, wait.message)
        elif not guards_allow(job):
            continue  # a guard's wait is about this job (its tracker), not the group: the next job may go
        elif _submit(backend, job):
            submitted += 1
            started[job.user_id] += 1
    return submitted


def _due() -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())


def _kinds(pulls: bool) -> list[str]:
    return [kind for kind, backend in backends.registered().items() if backend.pulls_jobs == pulls]


def _of_kinds(kinds: list[str]) -> Q:
    q = Q(pk__in=[])
    for kind in kinds:
        q |= backend_filter(kind)
    return q


def _owners(queued, default_limit: int, *, with_room: bool):
    """The owners of `queued` jobs who have (or lack) a free plan slot: one row per user, not per job, so the
    cost does not grow with the length of anyone's queue."""
    owners = (get_user_model().objects.filter(Exists(queued.filter(user=OuterRef("pk"))))
              .annotate(slot_limit=slot_limit_sql(default_limit, OuterRef("pk")), active_count=_active_jobs("pk")))
    room = Q(slot_limit=0) | Q(active_count__lt=F("slot_limit"))
    return (owners.filter(room) if with_room else owners.exclude(room)).values("pk")


def _active_jobs(user_field: str) -> Coalesce:
    """How many slot-holding jobs the user in `user_field` of the outer query has."""
    active = (Job.objects.filter(user=OuterRef(user_field), status__in=ACTIVE).order_by()
              .values("user").annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(active), 0)


def _pushing_queued():
    return Job.objects.filter(_due(), _of_kinds(_kinds(pulls=False)), status=Status.QUEUED)


def _candidates(limit: int, default_limit: int) -> list[Job]:
    queued = _pushing_queued()
    ready = queued.filter(user__in=_owners(queued, default_limit, with_room=True))
    turns = ready.annotate(turn=Window(RowNumber(), partition_by=[F("user_id"), F("backend")], order_by=F("id").asc()))
    rows = turns.filter(turn__lte=PER_GROUP).annotate(slot_limit=slot_limit_sql(default_limit, OuterRef("user")),
                                                      active_count=_active_jobs("user"))
    return list(rows.select_related("user").order_by("turn", "id")[:limit])


def _explain_unstartable(default_limit: int) -> None:
    """Give queued jobs that cannot start their reason, touching only jobs whose reason changes."""
    queued = Job.objects.filter(status=Status.QUEUED)
    known = list(backends.registered())
    for job in queued.exclude(_of_kinds(known)).exclude(reason_code=NO_BACKEND)[:EXPLAIN_LIMIT]:
        services.set_reason(job, NO_BACKEND, f"No '{backends.kind_of(job.backend)}' backend is running yet; "
                            "the job starts as soon as one is available.")
    down = [kind for kind in _kinds(pulls=True) if not backends.registered()[kind].available()]
    for job in queued.filter(_of_kinds(down)).exclude(reason_code=NO_BACKEND)[:EXPLAIN_LIMIT]:
        label = backends.get_backend(job.backend).label.lower()
        services.set_reason(job, NO_BACKEND, f"No {label} is running right now; the job starts as soon as one is.")
    pushing = _pushing_queued()
    full = pushing.filter(user__in=_owners(pushing, default_limit, with_room=False))
    for job in full.exclude(reason_code=WAITING_FOR_SLOT)[:EXPLAIN_LIMIT]:
        services.set_reason(job, WAITING_FOR_SLOT, "Waiting for one of your active downloads to finish.")


def slot_for(job: Job, full: set[int]) -> bool:
    """Whether the job's owner has a free plan slot; if not, the job says it waits for one.

    `full` collects the users found without a slot during one pass, so their later jobs cost no query.
    Shared by the dispatcher (pushing backends) and the engine's claims (pulling)."""
    if job.user_id in full or not has_free_slot(job.user):
        full.add(job.user_id)
        services.set_reason(job, WAITING_FOR_SLOT, "Waiting for one of your active downloads to finish.")
        return False
    return True


def guards_allow(job: Job) -> bool:
    """Ask the registered start guards (`backends.check_guards`): a `Wait` leaves the job queued with its reason
    (it starts on a later tick once the guard allows), a `Refuse` fails it. Shared with the engine's claims."""
    verdict = backends.check_guards(job)
    if verdict is None:
        return True
    try:
        if isinstance(verdict, backends.Refuse):
            services.fail(job, verdict.code, verdict.message)
        else:
            services.set_reason(job, verdict.code, verdict.message)
    except services.StaleJob:
        pass  # the user (or another worker) moved it meanwhile: their change stands
    return False


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
        if failover.after_error(job, exc, attempts):  # the policy names this refusal: the next backend tries
            return _resubmit(job)
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


def _resubmit(job: Job) -> bool:
    """A job just failed over tries its new backend in the same turn, so it keeps its place in line (the
    user's slot it was about to take is still free). A pulling backend claims it by id order anyway."""
    job.refresh_from_db()
    backend = backends.get_backend(job.backend)
    if job.status != Status.QUEUED or backend is None or backend.pulls_jobs:
        return False
    wait = backend.may_start(job)
    if wait is not None:
        services.set_reason(job, wait.code, wait.message)
        return False
    return guards_allow(job) and _submit(backend, job)


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
    return enqueue("downloads.tasks.poll_remote", group="poll_remote", on_commit=False)  # else the schedule's
