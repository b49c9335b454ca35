"""What the spine's background runs share: the lease a run holds on a job (enqueueing is config.tasks.enqueue).

A run (bringing files home, post-processing) works on one job under the lease `<kind>.<job id>`. The
lease is taken when the run is enqueued (so a sweep does not enqueue it twice) and renewed while the run
works: long work calls `keep_alive()`, which also notices a job that left the status the run serves
(cancelled by its owner) and stops the run with `JobMoved`. A killed worker stops renewing, its lease
expires and the next sweep enqueues the run again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings

from downloads import leases
from downloads.models import Job

# Status and cancel checks while a run works: often enough that a cancel stops the bytes within seconds.
CHECK_EVERY_SECONDS = 2.0


class JobMoved(Exception):
    """The job left the status the run serves (cancelled, waiting for a login, failed by a service), or the
    run lost its lease to another worker: stop quietly, the other change stands."""


def lease_ttl() -> float:
    return float(settings.BRING_HOME_LEASE_SECONDS)


def lease_name(kind: str, job_id: int) -> str:
    return f"{kind}.{job_id}"


def reserve(kind: str, job_id: int) -> str | None:
    """Take the job's lease for a run about to be enqueued; the holder id (passed to the task) or None when
    a run already holds it."""
    holder = leases.new_holder()
    return holder if leases.claim(lease_name(kind, job_id), holder, lease_ttl()) else None


@dataclass
class Hold:
    job_id: int
    lease: str
    holder: str
    status: str
    ttl: float
    checked: float = field(default_factory=time.monotonic)


_hold: ContextVar[Hold | None] = ContextVar("flotilla_run_hold", default=None)


@contextlib.contextmanager
def holding(kind: str, job: Job, holder: str) -> Iterator[bool]:
    """Hold (claim or renew) the job's lease for the block; yields False when another run holds it.
    The lease is released at the end, whatever happened."""
    name = lease_name(kind, job.pk)
    if not leases.claim(name, holder, lease_ttl()):
        yield False
        return
    token = _hold.set(Hold(job.pk, name, holder, job.status, lease_ttl()))
    try:
        yield True
    finally:
        _hold.reset(token)
        leases.release(name, holder)


def keep_alive() -> None:
    """Called by long work inside a run (per chunk is fine: it only queries every CHECK_EVERY_SECONDS).

    Renews the run's lease and raises `JobMoved` when the job left the status the run serves or the lease
    was lost. Outside a run (a test calling a hook directly) it does nothing."""
    hold = _hold.get()
    if hold is None:
        return
    now = time.monotonic()
    if now - hold.checked < min(CHECK_EVERY_SECONDS, hold.ttl / 4):
        return
    hold.checked = now
    if Job.objects.filter(pk=hold.job_id).values_list("status", flat=True).first() != hold.status:
        raise JobMoved(f"job {hold.job_id} is no longer {hold.status}")
    if not leases.claim(hold.lease, hold.holder, hold.ttl):
        raise JobMoved(f"job {hold.job_id}: lease {hold.lease} taken over")
