"""`GET|HEAD /api/v1/stream/<job>[/<file>]`: a file played in the browser (streaming/stream.py says which file,
from where, and the limits), the player page, and the player's live numbers.

The stream view is async: waiting up to STREAM_TIMEOUT for a piece must not hold one of the few threads
Django runs sync views on (they all share one under ASGI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import key_from_headers, user_for_key
from billing import services as billing
from config.errors import DomainError
from config.logging import request_id_var
from downloads.models import TERMINAL, Job
from streaming import ephemeral, files, live, remote, sending
from streaming import stream as streams
from streaming.links import LinkNotFound, basename

log = logging.getLogger(__name__)


class EngineLeft(Exception):
    """The engine no longer holds the job (it finished, or moved to another engine)."""


def _error(exc: DomainError) -> HttpResponse:
    response = JsonResponse(exc.as_dict(), status=exc.http_status, headers=getattr(exc, "headers", None))
    response._has_been_logged = True  # the query string holds the stream link: our own reply says enough
    return response


async def _authenticate(request: HttpRequest, job_id: int, file_id: int | None):
    """A stream link (`?t=`), else an API key header, else the session; 401 without any of them."""
    token = request.GET.get("t")
    if token:
        user_id = streams.user_for_token(token, job_id, file_id)
        user = await get_user_model().objects.filter(pk=user_id, is_active=True).afirst()
        if user is None:
            raise LinkNotFound("Not found.")
        return user
    raw = key_from_headers(request.headers)
    if raw is not None:
        user = await sync_to_async(user_for_key)(raw)
        if user is None:
            raise streams.NotAuthenticated("Invalid or revoked API key.")
        return user
    user = await request.auser()
    if not user.is_authenticated:
        raise streams.NotAuthenticated("Log in, or use an API key or a stream link.")
    return user


@require_http_methods(["GET", "HEAD"])
async def stream(request: HttpRequest, job_id: str, file_id: str | None = None) -> HttpResponse:
    try:
        job_pk, file_pk = int(job_id), (int(file_id) if file_id else None)
        if job_pk > 2**63 - 1 or (file_pk or 0) > 2**63 - 1:
            raise LinkNotFound("Not found.")
        user = await _authenticate(request, job_pk, file_pk)
        deadline = time.monotonic() + settings.STREAM_TIMEOUT
        while True:
            try:
                return await _answer(request, user, job_pk, file_pk, deadline)
            except streams.Pending:
                # A cold start: the engine is about to claim the job or learn its files. Waiting here (no thread
                # held) beats a 503 whose Retry-After a player would sit out in full.
                if time.monotonic() + PENDING_POLL >= deadline:
                    raise
                await asyncio.sleep(PENDING_POLL)
    except DomainError as exc:
        return _error(exc)


PENDING_POLL = 0.2  # seconds between two looks at a job the engine has not taken up yet (it polls every 0.5 s)


async def _answer(request: HttpRequest, user, job_pk: int, file_pk: int | None, deadline: float) -> HttpResponse:
    target = await sync_to_async(streams.resolve)(user, job_pk, file_pk)
    if target.source == "engine":
        try:
            return await _from_engine(request, target, max(0.0, deadline - time.monotonic()))
        except EngineLeft:
            # The job finished and left the engine between our look and its answer (it is on disk now), or the
            # engine claimed it and has not added it to its session yet (it will shortly).
            target = await sync_to_async(streams.resolve)(user, job_pk, file_pk)
            if target.source == "engine" and target.job.status not in TERMINAL:
                raise streams.EngineStarting() from None
            if target.source != "disk":
                raise streams.Busy("The engine holding this download cannot be reached right now.",
                                   code="engine_unavailable") from None
    if target.source == "backend":
        return await remote.respond(request, target)
    return await _from_disk(request, target)


def _on_done(user_id: int, status: int, log_fields: dict, *, slot: bool) -> Callable[[int], None]:
    request_id = request_id_var.get()

    def done(sent: int) -> None:
        if slot:
            streams.release_slot(user_id)
        sending.finish_delivery(user_id, sent, {**log_fields, "status": status}, request_id=request_id)

    return done


async def _from_disk(request: HttpRequest, target: streams.StreamTarget) -> HttpResponse:
    file_target = await sync_to_async(streams.disk_target)(target)
    answer = await sync_to_async(files.plan_file)(
        file_target, range_header=request.headers.get("Range"), if_range=request.headers.get("If-Range"), inline=True)
    fields = {**answer.log_fields, "source": "disk"}
    if request.method == "HEAD":
        return HttpResponse(status=answer.status, headers=answer.headers)
    if settings.STREAM_OFFLOAD:
        # The proxy answers Range itself from the file; we only authorised it (and meter what it will send).
        headers = {k: v for k, v in answer.headers.items() if k not in ("Content-Length", "Content-Range")}
        headers.update(streams.offload_headers(file_target))
        await sync_to_async(_on_done(target.user.pk, answer.status, {**fields, "offload": True}, slot=False))(
            sum(s.length for s in answer.segments))
        return HttpResponse(status=200, headers=headers)
    streams.check_memory()
    await sync_to_async(streams.acquire_slot)(target.user)
    body = files.read_file(file_target, answer.segments, answer.trailer)
    if answer.multipart:
        body = sending.coalesce(body)
    done = _on_done(target.user.pk, answer.status, fields, slot=True)
    return StreamingHttpResponse(ephemeral.track_reads(sending.ametered(body, done), target.job),
                                 status=answer.status, headers=answer.headers)


def _live_plan(request: HttpRequest, target: streams.StreamTarget) -> tuple[int, int, int, dict[str, str]]:
    """The engine's answer plan (streams.range_plan).

    No Content-Length: a body whose piece does not come within STREAM_TIMEOUT ends early, and an ASGI app
    cannot close the connection under daphne, so a promised length would leave the client waiting for bytes
    that never come until its own read timeout. Chunked, the early end is seen at once; Content-Range still
    says the range and the size. `_from_engine` adds the length when every byte is verified before sending."""
    status, start, length, headers = streams.range_plan(target, request.headers.get("Range"),
                                                        request.headers.get("If-Range"))
    return status, start, length, {**headers, "X-Stream-Source": "engine"}


async def _from_engine(request: HttpRequest, target: streams.StreamTarget, budget: float) -> HttpResponse:
    status, start, length, headers = _live_plan(request, target)
    await sync_to_async(billing.check_transfer)(target.user, length)
    if request.method == "HEAD":  # no body to end early: the length a complete answer has
        return HttpResponse(status=status, headers={**headers, "Content-Length": str(length)})
    streams.check_memory()
    await sync_to_async(streams.acquire_slot)(target.user)
    reader = None
    began = time.monotonic()
    # `budget`: what is left of STREAM_TIMEOUT for everything before the first byte (waiting for the engine to
    # take the job up, connect, open, the first piece).
    try:
        reader = await live.open_reader(target.engine_address, target.job.pk, target.jobfile.path, timeout=budget)
        remaining = max(0.0, budget - (time.monotonic() - began))
        available = await reader.available(start, remaining) if length else 0
        if length and not available:
            raise streams.StreamTimeout(
                f"The first piece needed did not arrive within {settings.STREAM_TIMEOUT:g} s; try again.")
    except BaseException as exc:
        if reader is not None:
            await reader.close()
        await sync_to_async(streams.release_slot)(target.user.pk)
        if isinstance(exc, live.EngineUnavailable) and exc.code == "not_here":
            raise EngineLeft from None
        if isinstance(exc, live.EngineUnavailable) and exc.code == "no_metadata":
            raise streams.FilesPending("This download's metadata is not in yet.") from None
        if isinstance(exc, live.EngineUnavailable):
            raise streams.Busy("The engine holding this download cannot be reached right now.",
                               code="engine_unavailable") from None
        raise
    fields = {"job": target.job.pk, "file": target.jobfile.pk, "source": "engine",
              "range": f"{start}-{start + length - 1}" if status == 206 else None,
              "ttfb_ms": round((time.monotonic() - began) * 1000)}
    if available >= length:  # every byte is verified already: the body cannot end early, so say its length
        headers["Content-Length"] = str(length)
    done = _on_done(target.user.pk, status, fields, slot=True)
    on_disk = _now_on_disk(target)
    body = _live_body(reader, target.path, start, length, available, done, on_disk)
    return StreamingHttpResponse(ephemeral.track_reads(body, target.job), status=status, headers=headers)


def _now_on_disk(target: streams.StreamTarget) -> Callable[[], Awaitable[bool]]:
    """Whether the job went from the engine to disk (completed: every byte is in the file)."""

    async def check() -> bool:
        try:
            again = await sync_to_async(streams.resolve)(target.user, target.job.pk, target.jobfile.pk)
        except DomainError:
            return False
        return again.source == "disk" and again.path == target.path

    return check


async def _live_body(reader: live.EngineReader, path: Path, start: int, length: int, available: int,
                     done: Callable[[int], None], on_disk: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """Verified bytes only, read from disk one chunk at a time (memory per stream: one CHUNK_SIZE). A piece that
    does not arrive within STREAM_TIMEOUT ends the body early and cleanly: the player asks again from there.
    An engine that lets go of the job because it completed is no end: the rest is read from the finished file."""
    loop = asyncio.get_running_loop()
    sent = 0
    fd: int | None = None
    try:
        fd = await loop.run_in_executor(None, _open, path)

        async def more(position: int, remaining: int) -> int:
            try:
                return await reader.available(position, settings.STREAM_TIMEOUT)
            except live.EngineUnavailable as exc:
                if exc.code != "not_here" or not await on_disk():
                    raise
                return remaining  # completed: every byte is in the file

        async with contextlib.aclosing(sending.verified_chunks(fd, start, length, available, more)) as chunks:
            async for chunk in chunks:
                yield chunk
                sent += len(chunk)
    except live.EngineUnavailable as exc:
        log.info("stream cut: engine", extra={"code": exc.code})
    finally:
        cleanup = asyncio.ensure_future(_close_live(reader, fd, sent, done))
        sending._cleanups.add(cleanup)  # the loop keeps only weak references to tasks
        cleanup.add_done_callback(sending._cleanups.discard)
        await asyncio.shield(cleanup)


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))


async def _close_live(reader: live.EngineReader, fd: int | None, sent: int, done: Callable[[int], None]) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    await reader.close()
    await sync_to_async(done)(sent)


# --- the player page and its numbers -----------------------------------------------------------------------


@login_required
def player(request: HttpRequest, job_id: int, file_id: int | None = None) -> HttpResponse:
    """A `<video>` on a signed stream link, with a start estimate and live stats (static/js/player.js)."""
    job = get_object_or_404(Job.objects.for_user(request.user), pk=job_id)
    jobfile = job.files.filter(pk=file_id).first() if file_id else streams.primary_file(job)
    if jobfile is None:
        return render(request, "streaming/player.html", {"nav": "dashboard", "job": job, "jobfile": None}, status=404)
    return render(request, "streaming/player.html", {
        "nav": "dashboard", "job": job, "jobfile": jobfile, "name": basename(jobfile.path),
        "stream_url": streams.stream_url(request.user.pk, jobfile),
        "stats_url": reverse("stream-stats", args=[job.pk, jobfile.pk]),
        "audio": (jobfile.mime_type or "").startswith("audio/"),
    })


class StreamStatsView(APIView):
    """GET /api/v1/stream/{job}/{file}/stats/: what the player shows beside the video (polled once a second)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, job_id: int, file_id: int) -> Response:
        job = get_object_or_404(Job.objects.for_user(request.user), pk=job_id)
        jobfile = get_object_or_404(job.files, pk=file_id)
        return Response(streams.stats(job, jobfile))
