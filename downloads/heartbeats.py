"""Process liveness rows for the admin health page, and the worker cluster's own beat.

Why the worker beats from a thread: it used to beat from the once-a-minute `dispatch` task, under the pid
of whichever django-q2 worker process ran it. With two worker processes that made one row per process,
each fresh only when its process happened to draw `dispatch`, and a worker process busy with a long
transfer (up to the cluster's 600 s timeout) could not beat at all: a live cluster showed a row "stale"
(283 s) while the other row kept `ok` true. Now every worker process of a cluster beats one row named
after the cluster (the sentinel, its parent process) from a daemon thread, every
`WORKER_HEARTBEAT_TIMEOUT / 4` seconds, whatever its tasks are doing. A stuck task queue is measured
separately (queue depth and its oldest task), not through liveness.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from downloads.models import ProcessHeartbeat

log = logging.getLogger(__name__)

# Set in each django-q2 worker process by `on_worker_spawn`: the pid of the cluster (its sentinel).
_cluster_pid: int | None = None


def process_name(kind: str) -> str:
    pid = _cluster_pid if kind == ProcessHeartbeat.Kind.WORKER and _cluster_pid else os.getpid()
    return f"{kind}@{socket.gethostname()}:{pid}"


def beat(kind: str, *, name: str | None = None, **info) -> None:
    name = name or process_name(kind)
    now = timezone.now()
    if not ProcessHeartbeat.objects.filter(name=name).update(last_seen=now, info=info, kind=kind):
        ProcessHeartbeat.objects.get_or_create(name=name, defaults={"kind": kind, "last_seen": now, "info": info})


def forget_stale(older_than) -> int:
    deleted, _ = ProcessHeartbeat.objects.filter(last_seen__lt=older_than).delete()
    return deleted


# --- the worker cluster's beat ---------------------------------------------------------------------


def worker_beat_interval() -> float:
    """Four beats per timeout: one late or lost beat never makes a live cluster look stale."""
    return max(0.2, settings.WORKER_HEARTBEAT_TIMEOUT / 4)


def _beat_forever(stop: threading.Event, interval: float) -> None:
    while True:
        try:
            close_old_connections()
            beat(ProcessHeartbeat.Kind.WORKER, cluster_pid=_cluster_pid, beat_interval=interval)
        except Exception:  # a database hiccup skips one beat; the thread must outlive it
            log.warning("worker heartbeat failed; retrying", exc_info=True)
            connection.close()
        if stop.wait(interval):
            connection.close()
            return


def start_worker_beat(*, cluster_pid: int | None = None, interval: float | None = None) -> threading.Event:
    """Beat for this process's worker cluster from a daemon thread; set the returned event to stop it."""
    global _cluster_pid
    _cluster_pid = cluster_pid or os.getppid()
    stop = threading.Event()
    thread = threading.Thread(target=_beat_forever, args=(stop, interval or worker_beat_interval()),
                              name="worker-heartbeat", daemon=True)
    thread.start()
    return stop


def on_worker_spawn(sender, proc_name: str = "", **_kwargs) -> None:
    """django-q2's `post_spawn` signal: runs in each new worker process (its parent is the sentinel)."""
    start_worker_beat()
