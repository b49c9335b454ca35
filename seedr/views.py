"""The Seedr page: the panel renders its first state on the server; static/js/seedr.js keeps it live."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.decorators import policy_required
from config.formatting import human_bytes
from downloads.models import ACTIVE, Status
from seedr import services
from seedr.serializers import QueueItemSerializer

BUSY = {Status.STARTING, Status.FETCHING_METADATA, Status.TRANSFERRING, Status.WAITING}


def _row(job) -> dict:
    return {**QueueItemSerializer(job).data, "percent": round(job.progress * 100),
            "size": human_bytes(job.size_bytes) if job.size_bytes else "?", "busy": job.status in BUSY}


@policy_required
@ensure_csrf_cookie
def panel(request: HttpRequest) -> HttpResponse:
    if not settings.SEEDR_ENABLED:
        raise Http404("Seedr is not enabled on this server.")
    snapshot = services.queue_status(request.user)
    config = {
        "api": reverse("seedr-status").rsplit("status/", 1)[0],
        "wsPath": "/ws/events/",
        "torrentMaxBytes": settings.TORRENT_MAX_BYTES,
        "batchMaxLines": settings.BATCH_MAX_LINES,
        "activeStatuses": sorted(ACTIVE),
    }
    return render(request, "seedr/panel.html", {
        "nav": "seedr",
        "account": snapshot["account"],
        "quota": snapshot["quota"],
        "batches": snapshot["batches"],
        "queue": [_row(job) for job in snapshot["queue"]],
        "done": [_row(job) for job in snapshot["done"]],
        "insights": services.account_of(request.user).insights,
        "config": config,
    })
