"""The one way any app hands work to the django-q2 worker.

It lives in config, the bottom layer, so every app can enqueue without importing the app that owns the
task: the task is named by its dotted path (`"seedr.tasks.refresh_insights"`), never imported.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django_q import tasks as django_q_tasks

from config.logging import request_id_var

log = logging.getLogger(__name__)


def enqueue(task: str, *args, on_commit: bool = True, **kwargs) -> bool:
    """Enqueue the django-q2 task `task` with `args` (ids and primitives only) and `kwargs` (django-q2's
    options, such as `group`), once the current transaction has committed unless `on_commit=False`.

    The request id goes along (the runner wrapper `downloads.tasks.task` sets it for the task's log lines),
    so a user's click and the worker's reaction share it. A failure to enqueue (broker down) is logged,
    never raised: every caller's work is also picked up by a schedule, and a request must not fail over it.
    Returns False only when an immediate enqueue failed.
    """
    request_id = request_id_var.get()

    def send() -> bool:
        try:
            django_q_tasks.async_task(task, *args, request_id=request_id, **kwargs)
        except Exception:
            log.warning("could not enqueue a task; its schedule picks the work up", exc_info=True,
                        extra={"task": task})
            return False
        return True

    if on_commit:
        transaction.on_commit(send)
        return True
    return send()
