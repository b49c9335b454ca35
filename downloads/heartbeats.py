"""Process liveness rows for the admin health page."""

from __future__ import annotations

import os
import socket

from django.utils import timezone

from downloads.models import ProcessHeartbeat


def process_name(kind: str) -> str:
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


def beat(kind: str, *, name: str | None = None, **info) -> None:
    name = name or process_name(kind)
    now = timezone.now()
    if not ProcessHeartbeat.objects.filter(name=name).update(last_seen=now, info=info, kind=kind):
        ProcessHeartbeat.objects.get_or_create(name=name, defaults={"kind": kind, "last_seen": now, "info": info})


def forget_stale(older_than) -> int:
    deleted, _ = ProcessHeartbeat.objects.filter(last_seen__lt=older_than).delete()
    return deleted
