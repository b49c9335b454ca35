"""django-q2 entry points of the servers app (thin wrappers through the spine's runner `downloads.tasks.task`)."""

from __future__ import annotations

import logging

from config.logging import request_id_var
from downloads.tasks import task

log = logging.getLogger(__name__)


@task
def deliver(job_id: int, holder: str) -> int:
    """Bring a finished server download home through the path mapping (one attempt, under a lease)."""
    from servers.backend import run_delivery

    return run_delivery(job_id, holder)


def enqueue(func: str, *args) -> None:
    """Enqueue a task now (used on commit); the poller enqueues again whatever this could not."""
    from django_q.tasks import async_task

    try:
        async_task(func, *args, group="servers", request_id=request_id_var.get())
    except Exception:
        log.warning("could not enqueue a servers task", exc_info=True, extra={"func": func})
