"""Streaming's worker tasks: thin wrappers (downloads.tasks.task) around services."""

from __future__ import annotations

from downloads.tasks import task
from streaming import ephemeral
from streaming import preload as preloading


@task
def preload() -> int:
    """Passes of the preload queue (kicked by every viewport change, and every minute)."""
    return preloading.run()


@task
def remove_idle_streams() -> int:
    """"Play without downloading" jobs nobody read for STREAM_IDLE_MINUTES, removed with their data."""
    return ephemeral.remove_idle()
