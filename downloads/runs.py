"""What the spine's background runs share: the lease a run holds on a job (enqueueing is config.tasks.enqueue).

A run (bringing files home, post-processing) works on one job under the lease `<kind>.<job id>`. The
lease is taken when the run is enqueued (so a sweep does not enqueue it twice) and renewed while the run's
process lives, by a thread: a run blocked in one long read (a stalled transfer waits up to its read timeout)
is slow, not dead, and must not be taken over while it can still write. Long work calls `keep_alive()`,
which notices a job that left the status the run serves (cancelled by its owner) or a lease lost anyway,
and stops the run with `JobMoved`. A killed worker stops renewing, its lease expires and the next sweep
enqueues the run again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection

from downloads import leases
from downloads.models import Job

log = logging.getLogger(__name__)

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
    renewer: _Renewer | None = None


class _Renewer:
    """Renews a held lease every third of its TTL from a daemon thread (with its own database connection)
    until stopped; `lost` when another holder took the lease meanwhile."""

    def __init__(self, name: str, holder: str, ttl: float) -> None:
        self.name, self.holder, self.ttl = name, holder, ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, name=f"lease-{name}", daemon=True)
        self._thread.start()

    def _renew_forever(self) -> None:
        try:
            while not self._stop.wait(self.ttl / 3):
                try:
                    if not leases.claim(self.name, self.holder, self.ttl):
                        self.lost = True
                        return
                except DatabaseError:  # one missed renewal is not fatal: two more fit in the TTL
                    log.warning("lease renewal failed; retrying", extra={"lease": self.name}, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        """Stop renewing; returns once no renewal is in flight (so a release after this one stands)."""
        self._stop.set()
        self._thread.join()


_hold: ContextVar[Hold | None] = ContextVar("flotilla_run_hold", default=None)


@contextlib.contextmanager
def holding(kind: str, job: Job, holder: str) -> Iterator[bool]:
    """Hold (claim or renew) the job's lease for the block; yields False when another run holds it.
    The lease is renewed in the background while the block runs and released at its end, whatever happened.

    Inside an open transaction (a caller's atomic block) another connection could not see the lease row, or
    would wait on its lock: there `keep_alive()` renews it instead."""
    name = lease_name(kind, job.pk)
    if not leases.claim(name, holder, lease_ttl()):
        yield False
        return
    renewer = None if connection.in_atomic_block else _Renewer(name, holder, lease_ttl())
    token = _hold.set(Hold(job.pk, name, holder, job.status, lease_ttl(), renewer=renewer))
    try:
        yield True
    finally:
        _hold.reset(token)
        if renewer is not None:
            renewer.stop()
        leases.release(name, holder)


def keep_alive() -> None:
    """Called by long work inside a run (per chunk is fine: it only queries every CHECK_EVERY_SECONDS).

    Raises `JobMoved` when the job left the status the run serves or the lease was lost (and renews the
    lease itself where no renewer thread does). Outside a run (a test calling a hook directly) it does
    nothing."""
    hold = _hold.get()
    if hold is None:
        return
    now = time.monotonic()
    if now - hold.checked < min(CHECK_EVERY_SECONDS, hold.ttl / 4):
        return
    hold.checked = now
    if Job.objects.filter(pk=hold.job_id).values_list("status", flat=True).first() != hold.status:
        raise JobMoved(f"job {hold.job_id} is no longer {hold.status}")
    lost = hold.renewer.lost if hold.renewer else not leases.claim(hold.lease, hold.holder, hold.ttl)
    if lost:
        raise JobMoved(f"job {hold.job_id}: lease {hold.lease} taken over")
