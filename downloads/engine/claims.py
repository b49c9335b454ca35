"""Which jobs an engine runs: claiming queued ones, and requeueing the jobs of an engine that died.

A claim is the spine's conditional status change (`queued → starting WHERE status = 'queued'`) with the
engine's name written in the same UPDATE, so two engines racing for one job cannot both win: on PostgreSQL
the loser's UPDATE waits for the winner's row lock, re-reads the row and matches nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from downloads import dispatch, services
from downloads.models import TERMINAL, IllegalTransition, Job, ProcessHeartbeat, Status

log = logging.getLogger(__name__)

KIND = "engine"
SAME_TORRENT_RUNNING = "same_torrent_running"
ENGINE_LOST = "engine_lost"


def engine_jobs():
    return Job.objects.filter(backend=KIND)


def owned_by(engine_name: str) -> list[Job]:
    """The unfinished jobs this engine holds (paused ones included: they keep their place in the session)."""
    return list(engine_jobs().filter(claimed_by=engine_name).exclude(status__in=TERMINAL).select_related("user"))


def claim_queued(engine_name: str, limit: int, *, busy_hashes: frozenset[str] = frozenset()) -> list[Job]:
    """Claim up to `limit` queued engine jobs, oldest first, within each user's plan slots.

    `busy_hashes` are the info-hash HMACs already in this engine's session: libtorrent holds one copy of a
    torrent, so another user's job for the same torrent waits (or goes to another engine).
    """
    if limit <= 0:
        return []
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    candidates = engine_jobs().filter(due, status=Status.QUEUED).select_related("user").order_by("id")[: limit * 5]
    claimed: list[Job] = []
    full: set[int] = set()
    for job in candidates:
        if len(claimed) >= limit:
            break
        if job.info_hash_hmac in busy_hashes:
            services.set_reason(job, SAME_TORRENT_RUNNING, "Waiting: this torrent is already running for another "
                                "download on this engine.")
            continue
        if not dispatch.slot_for(job, full) or not dispatch.guards_allow(job):
            continue
        try:
            services.change_status(job, Status.STARTING, reason_code="claimed", reason="Starting in the engine.",
                                   claimed_by=engine_name, claimed_at=now, attempts=0, next_attempt_at=None)
        except services.StaleJob:
            continue  # another engine (or the user) got there first
        claimed.append(job)
        busy_hashes = busy_hashes | {job.info_hash_hmac}
    return claimed


def live_engine_names(now: dt.datetime | None = None) -> set[str]:
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=settings.ENGINE_HEARTBEAT_TIMEOUT)
    return set(
        ProcessHeartbeat.objects.filter(kind=ProcessHeartbeat.Kind.ENGINE, last_seen__gte=cutoff)
        .values_list("name", flat=True)
    )


def any_engine_alive() -> bool:
    return bool(live_engine_names())


def requeue_orphans(engine_name: str) -> int:
    """Put the jobs of engines without a fresh heartbeat back in the queue; returns how many moved.

    Running jobs go back to `queued` (whoever claims them next continues from the per-job resume data);
    paused ones only lose their claim, so resuming them queues them again.
    """
    alive = live_engine_names() | {engine_name}
    orphans = engine_jobs().exclude(claimed_by="").exclude(claimed_by__in=alive).exclude(status__in=TERMINAL)
    moved = 0
    for job in orphans.select_related("user"):
        dead = job.claimed_by
        if job.status == Status.PAUSED:
            moved += Job.objects.filter(pk=job.pk, claimed_by=dead, status=Status.PAUSED).update(
                claimed_by="", claimed_at=None
            )
            continue
        try:
            services.change_status(job, Status.QUEUED, reason_code=ENGINE_LOST,
                                   reason="The engine running this download stopped; it continues on another one.",
                                   event_data={"engine": dead})
        except (services.StaleJob, IllegalTransition) as exc:  # moved meanwhile, or in a step that cannot requeue
            log.warning("could not requeue orphan", extra={"job": job.pk, "error": type(exc).__name__})
            continue
        moved += 1
    if moved:
        log.info("requeued jobs of dead engines", extra={"count": moved})
    return moved
