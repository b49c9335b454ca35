"""Resume data on disk: one file per job, so whichever engine runs the job next finds it.

A file is written to a temporary name, fsynced and renamed over the old one, so a `kill -9` at any moment
leaves either the previous complete file or the new complete file, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

# A write takes milliseconds; a temporary this old was left by a writer that was killed mid-write.
STALE_TEMPORARY_SECONDS = 3600


class ResumeStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, job_id: int) -> Path:
        return self.directory / f"{int(job_id)}.resume"

    def read(self, job_id: int) -> bytes | None:
        try:
            return self.path(job_id).read_bytes() or None
        except FileNotFoundError:
            return None

    def write(self, job_id: int, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(job_id)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def delete(self, job_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(job_id).unlink()

    def job_ids(self) -> list[int]:
        if not self.directory.exists():
            return []
        return sorted(int(p.stem) for p in self.directory.glob("*.resume") if p.stem.isdigit())

    def remove_stale_temporaries(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete temporaries a killed writer left behind; returns how many."""
        if not self.directory.exists():
            return 0
        removed, cutoff = 0, time.time() - older_than
        for tmp in self.directory.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed
