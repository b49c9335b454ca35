"""The "engine" backend as every process sees it: a pulling backend whose commands are status changes.

Web and worker never talk to libtorrent. Pausing, resuming or cancelling an engine job is the status change
the spine's services already make; the engine holding the job sees it at its next reconcile (within
ENGINE_POLL_INTERVAL) and applies it to its session. Files are written straight into the job's folder,
so bringing them home is a check that they are there (`bring_home.complete_in_place`, after seeding).
"""

from __future__ import annotations

from collections.abc import Sequence

from downloads.backends import Backend, BackendError
from downloads.engine import claims
from downloads.models import Job
from downloads.paths import UnsafePath, safe_join

FILES_MISSING = "engine_files_missing"


class EngineBackend(Backend):
    kind = claims.KIND
    label = "Built-in engine"
    pulls_jobs = True

    def available(self) -> bool:
        return claims.any_engine_alive()

    def submit(self, job: Job) -> None:
        raise BackendError("The engine claims its own jobs; nothing submits to it.", permanent=True)

    def sync(self, jobs: Sequence[Job]) -> None:
        """Nothing to poll: the engine reports progress through the spine itself."""

    def pause(self, job: Job) -> None:
        """The status change is the command (see the module docstring)."""

    def resume(self, job: Job) -> None:
        """The status change is the command."""

    def cancel(self, job: Job, *, delete_data: bool) -> None:
        """The status change (and `data_deleted_at`) is the command."""

    def bring_home(self, job: Job) -> None:
        """The files are already in the job's folder: verify each registered file is there, whole (no copy)."""
        for path, size in job.files.values_list("path", "size_bytes"):
            try:
                target = safe_join(job.data_dir, path)
                ok = target.is_file() and target.stat().st_size == size
            except (OSError, UnsafePath):
                ok = False
            if not ok:
                raise BackendError(f"The finished file {path} is missing from the download folder.",
                                   code=FILES_MISSING, permanent=True)
