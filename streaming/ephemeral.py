"""Play without downloading: a magnet, a .torrent or a search result becomes an *ephemeral* job on the built-in
engine, played at once from the swarm (streaming/stream.py), removed with its data after STREAM_IDLE_MINUTES
with no byte read, unless the user keeps it (then it is an ordinary download).

The job goes through the spine's intake like any add (policy, plan, quota, blocklist, duplicate), so a refusal
creates nothing; while it exists it counts against the user's storage like any job. "Last read" is a column
written at most once a minute per stream while bytes flow (not a write per chunk), so every web process and
the worker agree on it without a shared cache.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts.audit import record_audit
from config.errors import Conflict, DomainError
from downloads import play_sources
from downloads import services as jobs
from downloads.models import Job
from streaming.stream import primary_file

log = logging.getLogger(__name__)

ENGINE = "engine"  # ephemeral jobs always run on the built-in engine: it is the one that streams from the swarm
TOUCH_EVERY = 60.0  # seconds between two writes of last_read_at for one stream


class NotEphemeral(Conflict):
    code = "not_ephemeral"


# --- creating and keeping ----------------------------------------------------------------------------------


def play(user, *, magnet: str = "", torrent: bytes = b"", result: Any = None) -> Job:
    """Exactly one source; the job is created (ephemeral, on the engine) or nothing is."""
    if result is not None:
        make = play_sources.maker("result")
        if make is None:
            raise DomainError("Search results cannot be played on this server.", code="unsupported_source")
        return make(user, result)
    if magnet:
        return jobs.add_magnet(user, magnet, backend=ENGINE, ephemeral=True)
    return jobs.add_torrent(user, torrent, backend=ENGINE, ephemeral=True)


def keep(user, job: Job) -> Job:
    """Turn an ephemeral job into an ordinary download (it is never removed for idleness again)."""
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, ephemeral=True).update(ephemeral=False):
            raise NotEphemeral("This download is already kept.")
        job.ephemeral = False
        record_audit("job.keep", actor=user, target=job)
    return job


def play_links(job: Job) -> dict[str, Any]:
    """Where to play the job: the player page and the stream, once its primary file is known (after metadata).
    `playable` is False once the files are known and none is video or audio (null while they are not known)."""
    jobfile = primary_file(job)
    return {
        "job": job.pk,
        "ephemeral": job.ephemeral,
        "ready": jobfile is not None,
        "playable": True if jobfile is not None else (False if job.files.exists() else None),
        "player_url": reverse("delivery:player", args=[job.pk]),
        "stream_url": reverse("stream-job", args=[job.pk]) if jobfile is not None else None,
        "status_url": reverse("stream-play-status", args=[job.pk]),
    }


def get_job(user, job_id: int) -> Job:
    job = Job.objects.for_user(user).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such download.")
    return job


# --- last read ---------------------------------------------------------------------------------------------


async def atouch(job_id: int) -> None:
    await Job.objects.filter(pk=job_id, ephemeral=True).aupdate(last_read_at=timezone.now())


def track_reads(body: AsyncIterator[bytes], job: Job) -> AsyncIterator[bytes]:
    """A response body for `job`: for an ephemeral job, its reads are recorded while the bytes flow."""
    return _reading(body, job.pk) if job.ephemeral else body


async def _reading(body: AsyncIterator[bytes], job_id: int) -> AsyncIterator[bytes]:
    next_touch = 0.0  # the first chunk counts at once: a player that just started is a reader
    try:
        async for chunk in body:
            yield chunk
            if time.monotonic() >= next_touch:
                next_touch = time.monotonic() + TOUCH_EVERY
                await atouch(job_id)
    finally:
        # Closed with us (a player that went away), not whenever the garbage collector gets to it: the body's
        # own clean-up gives back the stream slot and the engine reader.
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()


# --- idle removal ------------------------------------------------------------------------------------------


def idle_jobs(now: dt.datetime | None = None):
    """Ephemeral jobs nobody has read for STREAM_IDLE_MINUTES (never read: counted from their creation)."""
    cutoff = (now or timezone.now()) - dt.timedelta(minutes=settings.STREAM_IDLE_MINUTES)
    return (Job.objects.filter(ephemeral=True).alias(last=Coalesce(F("last_read_at"), F("created_at")))
            .filter(last__lt=cutoff))


def remove_idle(now: dt.datetime | None = None) -> int:
    """Remove idle ephemeral jobs with their data; a job kept or read meanwhile is left alone. Returns how many."""
    removed = 0
    for job_id in idle_jobs(now).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            # Locked and checked again: the user may have pressed Keep, or a reader started, since the query.
            job = idle_jobs(now).select_for_update().filter(pk=job_id).first()
            if job is None:
                continue
            record_audit("job.ephemeral_removed", target=job, idle_minutes=settings.STREAM_IDLE_MINUTES)
            jobs.delete_job(None, job)
        removed += 1
    if removed:
        log.info("idle ephemeral jobs removed", extra={"count": removed})
    return removed
