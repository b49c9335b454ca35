"""One road home: the spine's single runner that brings a finished job's files into DATA_DIR, for every backend.

    backend sync: "the data is complete" ──► data_complete(job)   (status → transferring, attempts reset)
        └─ on commit: enqueue downloads.tasks.bring_home(job, holder)   (lease bring_home.<job> reserved)
    run(job): lease ─► backend.bring_home(job) ─┬─ returns ──────────────► finish(job)
                                                ├─ BackendError transient ► attempts+1, next_attempt_at
                                                │                            (backoff; dead letter after
                                                │                             JOB_MAX_ATTEMPTS: retries_exhausted)
                                                ├─ BackendError permanent ► failed with its code; backend.abandon
                                                └─ JobMoved ──────────────► nothing (cancelled, waiting…)
    sweep(): transferring jobs whose lease expired (killed worker) or whose retry is due ─► enqueue again

A backend whose files are already in place (the engine after seeding) takes the same hook inline with
`complete_in_place`: no copy, no queue, the same finish line. Backends never mark a job complete.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.tasks import enqueue
from downloads import backends, events, failover, finish, leases, retries, runs
from downloads import services as jobs
from downloads.models import EventKind, IllegalTransition, Job, Status

log = logging.getLogger(__name__)

BRING_HOME = "bring_home"  # lease kind: bring_home.<job id>
TASK = "downloads.tasks.bring_home"
NO_BACKEND = "no_backend"
CRASHED = "bring_home_error"


def data_complete(job: Job, *, reason_code: str = "bringing_home",
                  reason: str = "Downloaded; bringing the files home.", event_data: dict | None = None) -> Job:
    """A backend's sync saw the job's data complete: `transferring`, and the runner is enqueued on commit."""
    jobs.change_status(job, Status.TRANSFERRING, reason_code=reason_code, reason=reason, event_data=event_data,
                       attempts=0, next_attempt_at=None, download_rate=0, eta_seconds=None)
    _enqueue(job.pk)
    return job


def complete_in_place(job: Job, *, reason_code: str = "done", reason: str = "Download complete.",
                      event_data: dict | None = None, **fields) -> Job:
    """For a backend whose files are already in the job's folder: its hook verifies them, inline, then the
    finish line. Any error fails the job (nothing was moved, so there is nothing to retry)."""
    backend = backends.get_backend(job.backend)
    try:
        if backend is not None:
            backend.bring_home(job)
    except backends.BackendError as exc:
        return jobs.fail(job, exc.code, exc.message)
    return finish.finish(job, reason_code=reason_code, reason=reason, event_data=event_data, **fields)


def nudge(job: Job) -> bool:
    """Enqueue the run of a transferring job if it is due and nobody holds it (a backend's sync calls this
    for its transferring jobs, so a retry starts within SYNC_INTERVAL of being due). Returns enqueued."""
    if job.status != Status.TRANSFERRING or (job.next_attempt_at and job.next_attempt_at > timezone.now()):
        return False
    return _enqueue(job.pk)


def _enqueue(job_id: int) -> bool:
    holder = runs.reserve(BRING_HOME, job_id)
    if holder is None:
        return False
    enqueue(TASK, job_id, holder, group=BRING_HOME)
    return True


def sweep() -> int:
    """The scheduled safety net: enqueue every due transferring job nobody runs. Returns enqueued."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    ids = Job.objects.filter(due, status=Status.TRANSFERRING).values_list("pk", flat=True)
    return sum(_enqueue(job_id) for job_id in ids)


def run(job_id: int, holder: str | None = None) -> int:
    """The `downloads.tasks.bring_home` task: one attempt under the job's lease. Returns 1 when finished."""
    job = Job.objects.select_related("user").filter(pk=job_id).first()
    if job is None or job.status != Status.TRANSFERRING:
        return 0
    if job.next_attempt_at and job.next_attempt_at > timezone.now():
        return 0  # an early duplicate: the attempt is not due yet
    backend = backends.get_backend(job.backend)
    if backend is None:
        jobs.set_reason(job, NO_BACKEND, "Its backend is not loaded in this worker; the files come home when "
                        "it is.")
        return 0
    with runs.holding(BRING_HOME, job, holder or leases.new_holder()) as held:
        if not held:
            return 0  # another worker is on it
        try:
            backend.bring_home(job)
        except runs.JobMoved:
            log.info("bring-home stopped: the job changed", extra={"job": job.pk})
            return 0
        except backends.BackendError as exc:
            _failed_attempt(backend, job, exc)
            return 0
        except Exception as exc:
            # A bug or an odd disk error: counted like a transient error, so it ends in the dead letter
            # rather than retrying forever; the traceback goes to the worker's log, not to the user.
            log.exception("bring-home crashed", extra={"job": job.pk, "backend": job.backend})
            _failed_attempt(backend, job, backends.BackendError(
                f"Bringing the files home failed unexpectedly ({type(exc).__name__}).", code=CRASHED))
            return 0
        job.refresh_from_db()
        if job.status != Status.TRANSFERRING:
            return 0
        try:
            finish.finish(job, reason_code="delivered", reason="Download complete; the files are here.")
        except (jobs.StaleJob, IllegalTransition):
            return 0
    return 1


def _failed_attempt(backend: backends.Backend, job: Job, exc: backends.BackendError) -> None:
    job.refresh_from_db()
    if job.status != Status.TRANSFERRING:
        return  # cancelled (or failed by a service) meanwhile: that change stands
    attempts = job.attempts + 1
    if (exc.permanent or retries.exhausted(attempts)) and failover.after_error(job, exc, attempts):
        return  # moved to the next backend of the policy (the old one was told to drop it)
    try:
        if exc.permanent:
            jobs.fail(job, exc.code, exc.message)
        elif retries.exhausted(attempts):
            jobs.fail(job, retries.RETRIES_EXHAUSTED, retries.exhausted_message(attempts, exc.message),
                      last_code=exc.code, attempts=attempts)
        else:
            _back_off(job, exc, attempts)
            return
    except (jobs.StaleJob, IllegalTransition):
        return
    backend.abandon(job)
    enqueue("downloads.tasks.dispatch", group="dispatch")  # the job's slot is free


def _back_off(job: Job, exc: backends.BackendError, attempts: int) -> None:
    """Count the attempt and say when the next one is, in one conditional write with its event."""
    delay = retries.retry_delay(attempts)
    seconds = int(delay.total_seconds())
    reason = f"{exc.message} Retrying in {seconds} s."[:500]
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=Status.TRANSFERRING).update(
                attempts=attempts, next_attempt_at=timezone.now() + delay, reason_code=exc.code, reason=reason,
                updated_at=timezone.now()):
            return
        job.attempts, job.reason_code, job.reason = attempts, exc.code, reason
        events.emit(job, EventKind.MESSAGE, exc.code, {"status": job.status, "reason_code": exc.code,
                                                        "reason": reason, "attempts": attempts,
                                                        "retry_in": seconds})
    log.info("bring-home will be retried", extra={"job": job.pk, "attempts": attempts, "code": exc.code})
