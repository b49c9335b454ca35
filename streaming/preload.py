"""Preload (the brief's viewport queue): the items on a user's screen, ranked focused > adjacent > visible > near,
get the head and tail pieces of their primary file fetched before anyone presses Play, so the stream starts
at once (MP4 `moov` at the end, Matroska cues; the first bytes a player asks for).

- The web side (`set_viewport`, from `POST /api/v1/ui/viewport`) replaces the user's rows of the queue, one
  `downloads.PreloadItem` per job, in the database: every web process and worker shares it, on SQLite with the
  ORM broker as on PostgreSQL + Redis. Rows that left the screen are marked cancelled for the worker.
- The worker (`run`, task streaming.tasks.preload, kicked on every viewport change and every minute) holds a
  lease so one loop runs at a time, and makes a pass every PASS_INTERVAL: it cancels what left, takes the
  MAX_PRELOAD_CONCURRENCY highest items still wanted (priority, then newest viewport) and asks the engine
  holding each job for its head and tail pieces (the `preload` op of downloads/engine/streams.py); an item
  whose pieces are on disk is done and frees its slot. An item pushed out of the top is cancelled on the
  engine and waits again.
- Only jobs running on the built-in engine are preloaded: a completed job is on disk already, and other
  backends have no piece deadlines to ask for. Search results are not preloaded (fetching a result's metadata
  would mean joining its swarm for a user who may never press Play).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.tasks import enqueue
from downloads import leases
from downloads.engine.streams import channel_key
from downloads.models import TERMINAL, Job, PreloadItem
from streaming.live import engine_address
from streaming.stream import ENGINE_BACKEND, primary_file

log = logging.getLogger(__name__)

PRIORITIES = {"focused": 4, "adjacent": 3, "visible": 2, "near": 1}
MAX_ITEMS = 100  # items in one viewport: a screen shows a few dozen at most
LEASE = "streaming.preload"
LEASE_TTL = 30.0
PASS_INTERVAL = 0.25  # seconds between two passes: well inside the brief's "Play within 2 s"
LOOP_SECONDS = 50.0  # one task's loop; the every-minute schedule starts the next
_TIMEOUT = 3.0
State = PreloadItem.State


# --- the web side --------------------------------------------------------------------------------------


def set_viewport(user, items: Iterable[tuple[int, str]]) -> list[int]:
    """Replace the user's queue with `items` (job id, priority name); ids that are not the user's running engine
    jobs are ignored alike (another user's job looks like a missing one). Returns the job ids queued."""
    wanted: dict[int, int] = {}
    for job_id, name in items:
        wanted[job_id] = max(PRIORITIES[name], wanted.get(job_id, 0))
    eligible = set(Job.objects.for_user(user).filter(pk__in=wanted, backend=ENGINE_BACKEND, data_deleted_at=None)
                   .exclude(status__in=TERMINAL).values_list("pk", flat=True))
    wanted = {job_id: rank for job_id, rank in wanted.items() if job_id in eligible}
    now = timezone.now()
    with transaction.atomic():
        rows = {row.job_id: row for row in PreloadItem.objects.select_for_update().filter(user=user)}
        left = [row.pk for job_id, row in rows.items() if job_id not in wanted]
        # What an engine was asked for is cancelled there by the worker; the rest simply goes.
        PreloadItem.objects.filter(pk__in=left, engine="").delete()
        PreloadItem.objects.filter(pk__in=left).exclude(engine="").update(state=State.CANCELLED, updated_at=now)
        for job_id, rank in wanted.items():
            row = rows.get(job_id)
            if row is None:
                PreloadItem.objects.create(user=user, job_id=job_id, priority=rank, updated_at=now)
            else:
                state = State.WANTED if row.state == State.CANCELLED else row.state
                PreloadItem.objects.filter(pk=row.pk).update(priority=rank, state=state, updated_at=now)
        transaction.on_commit(_kick)
    return sorted(wanted)


def _kick() -> None:
    """Start the worker's loop, unless one runs: it sees this viewport at its next pass (no task per scroll).
    Asked after commit: a loop giving the lease up looks for work again after that, so no change is missed."""
    if not leases.is_held(LEASE):
        enqueue("streaming.tasks.preload", group="preload", on_commit=False)


# --- the engine ----------------------------------------------------------------------------------------


class EngineChannel:
    """The `preload` op of an engine's stream channel, one short connection per request (blocking: the worker
    runs it, no event loop)."""

    def ask(self, address: str, job_id: int, path: str, *, cancel: bool = False) -> int:
        """How many head/tail pieces are missing (0 for a cancel); raises OSError / ValueError when the engine
        cannot be reached or refuses (reply code in the message)."""
        host, _, port = address.rpartition(":")
        request = {"op": "preload", "key": channel_key(), "job": job_id, "path": path, "cancel": cancel}
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_TIMEOUT) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            line = sock.makefile("rb").readline(4096)
        reply = json.loads(line or b"{}")
        if not reply.get("ok"):
            raise ValueError(reply.get("code") or "engine_unreachable")
        return int(reply["missing"])


# --- the worker ----------------------------------------------------------------------------------------


def run(channel: EngineChannel | None = None, *, seconds: float = LOOP_SECONDS) -> int:
    """Passes until nothing is left to do or `seconds` are up; 0 when another worker holds the loop."""
    channel = channel or EngineChannel()
    holder = leases.new_holder()
    if not leases.claim(LEASE, holder, LEASE_TTL):
        return 0  # the loop that holds it sees this viewport at its next pass
    passes, end, renewed = 0, time.monotonic() + seconds, time.monotonic()
    try:
        while True:
            busy = pass_once(channel)
            passes += 1
            if not busy:
                # A viewport posted while we were deciding found the lease held and left it to us: after giving
                # it up, look once more, so no change waits for the next scheduled run.
                leases.release(LEASE, holder)
                if not _pending() or not leases.claim(LEASE, holder, LEASE_TTL):
                    return passes
            if time.monotonic() >= end:
                return passes
            if time.monotonic() - renewed > LEASE_TTL / 3:
                if not leases.claim(LEASE, holder, LEASE_TTL):
                    return passes
                renewed = time.monotonic()
            time.sleep(PASS_INTERVAL)
    finally:
        leases.release(LEASE, holder)


def _pending() -> bool:
    return PreloadItem.objects.exclude(state=State.DONE).exists()


def pass_once(channel: EngineChannel) -> bool:
    """One look at the queue; True while something is still wanted or running."""
    for item in PreloadItem.objects.filter(state=State.CANCELLED):
        _cancel(channel, item)
        PreloadItem.objects.filter(pk=item.pk, state=State.CANCELLED).delete()
    queue = list(PreloadItem.objects.filter(state__in=(State.WANTED, State.RUNNING))
                 .select_related("job").order_by("-priority", "-updated_at", "pk"))
    top = queue[:settings.MAX_PRELOAD_CONCURRENCY]
    for item in queue[settings.MAX_PRELOAD_CONCURRENCY:]:
        if item.state == State.RUNNING:  # pushed out by something more urgent: stop it, it waits its turn
            _cancel(channel, item)
            _save(item, state=State.WANTED, engine="")
    for item in top:
        _advance(channel, item)
    return any(item.state in (State.WANTED, State.RUNNING) for item in queue)


def _advance(channel: EngineChannel, item: PreloadItem) -> None:
    job = item.job
    if job.status in TERMINAL or job.backend != ENGINE_BACKEND or job.data_deleted_at is not None:
        _save(item, state=State.DONE)  # on disk already, or nothing to preload
        return
    jobfile = primary_file(job)
    address = engine_address(job.claimed_by)
    if jobfile is None or address is None:
        return  # no metadata yet, or not claimed by an engine yet: the next pass looks again
    try:
        missing = channel.ask(address, job.pk, jobfile.path)
    except (OSError, ValueError) as exc:
        log.info("preload not possible now", extra={"job": job.pk, "reason": str(exc)[:80]})
        return
    _save(item, state=State.DONE if missing == 0 else State.RUNNING, engine=job.claimed_by, path=jobfile.path)


def _cancel(channel: EngineChannel, item: PreloadItem) -> None:
    address = engine_address(item.engine) if item.engine and item.path else None
    if address is None:
        return  # the engine is gone, or was never asked: nothing to undo (its preloads expire anyway)
    try:
        channel.ask(address, item.job_id, item.path, cancel=True)
    except (OSError, ValueError):
        log.info("preload cancel not delivered", extra={"job": item.job_id})


def _save(item: PreloadItem, **fields) -> None:
    """Only while the row is as this pass saw it: a viewport POST in between wins (cancel, new priority)."""
    PreloadItem.objects.filter(pk=item.pk, state=item.state).update(**fields)
    for name, value in fields.items():
        setattr(item, name, value)
