"""Backoff and the dead letter for transient backend errors (submit and bring-home share these rules).

A transient error puts the job back in line after `retry_delay(attempts)`; once `JOB_MAX_ATTEMPTS` attempts
have failed the job fails with `retries_exhausted` and the last error, so nothing retries forever.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

RETRIES_EXHAUSTED = "retries_exhausted"
RETRY_BASE_SECONDS = 10
RETRY_MAX_SECONDS = 15 * 60


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff: 10 s, 20 s, 40 s … capped at 15 minutes."""
    return dt.timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


def exhausted(attempts: int) -> bool:
    """Whether `attempts` failed attempts are the last the operator allows."""
    return attempts >= settings.JOB_MAX_ATTEMPTS


def exhausted_message(attempts: int, last_error: str) -> str:
    return f"Gave up after {attempts} attempts. Last error: {last_error}"[:500]
