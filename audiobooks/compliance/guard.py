"""The start guard compliance registers with the spine (downloads.backends.register_guard)."""

from __future__ import annotations

from downloads.backends import Refuse, Wait
from downloads.models import Job

from . import services


class TrackerGuard:
    """Asked by the dispatcher (and the engine's claims) before a queued job starts."""

    def __call__(self, job: Job) -> Wait | Refuse | None:
        return services.start_verdict(job)

    def keeps_seeding(self, job: Job) -> bool:
        """A tracker job never stops seeding on the client's own limits: the rules decide (servers' submit)."""
        return services.rules_for(job) is not None
