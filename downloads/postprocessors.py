"""Post-processors: work done on a job's files once they are home, before the job counts as completed.

`finish(job)` asks every registered post-processor whether it `wants` the job; those that do form the job's
chain, run one after another in their `order` (then name): the job is `processing` while each
`run(job, report)` works in the worker (under one lease, the whole chain run again from the start after a
crash), reporting progress through `report`. The last one returning completes the job; one raising
`PostProcessError` fails it with its code and the rest do not run. Every one that wants the job runs: one
post-processor never hides another (the checksum manifest and the audiobook both happen). Post-processors
register in their app's `AppConfig.ready()`, like backends. The audiobook post-processor is the first big
one; `ChecksumManifest` below proves the hook.
"""

from __future__ import annotations

import hashlib
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path

from django.conf import settings

from downloads import events, runs
from downloads.models import EventKind, Job, Status
from downloads.paths import UnsafePath, safe_join


class PostProcessError(Exception):
    """A post-processor could not do its work; the job fails with `code` (retry it from the admin)."""

    def __init__(self, message: str, *, code: str = "postprocess_failed"):
        super().__init__(message)
        self.message, self.code = message, code


class Report:
    """What a running post-processor tells the world: progress events (coalesced), a live lease, cancels."""

    def __init__(self, job: Job, processor: PostProcessor) -> None:
        self.job, self.processor = job, processor
        self._last_event: float | None = None

    def progress(self, done: int, total: int, *, message: str = "") -> None:
        """`done` of `total` units (bytes, files); an event at most every PROGRESS_EVENT_INTERVAL, and the
        last one always. Raises `runs.JobMoved` when the job was cancelled meanwhile."""
        runs.keep_alive()
        now = time.monotonic()
        last = done >= total
        if not last and self._last_event is not None and now - self._last_event < settings.PROGRESS_EVENT_INTERVAL:
            return
        self._last_event = now
        events.emit(self.job, EventKind.PROGRESS, Status.PROCESSING, {
            "status": Status.PROCESSING, "postprocessor": self.processor.name, "done": done, "total": total,
            "fraction": round(done / total, 4) if total else 1.0, "message": message[:200],
        })


class PostProcessor(ABC):
    name: str = ""
    label: str = ""
    order: int = 50  # place in a job's chain: lower runs first (ties by name, never by registration order)

    @abstractmethod
    def wants(self, job: Job) -> bool:
        """Whether this post-processor takes the job (cheap: asked for every job that finishes)."""

    @abstractmethod
    def run(self, job: Job, report: Report) -> None:
        """Do the work; must be safe to run again from the start after a crash. Raise PostProcessError."""


_registry: dict[str, PostProcessor] = {}


def register(processor: PostProcessor) -> PostProcessor:
    if not processor.name:
        raise ValueError("A post-processor needs a name.")
    _registry[processor.name] = processor
    return processor


def unregister(name: str) -> None:
    _registry.pop(name, None)


def registered() -> dict[str, PostProcessor]:
    return dict(_registry)


def chain(job: Job) -> list[PostProcessor]:
    """Every registered post-processor that wants the job, in the order they run (empty: none)."""
    return sorted((p for p in _registry.values() if p.wants(job)), key=lambda p: (p.order, p.name))


# --- the checksum manifest -----------------------------------------------------------------------------

MANIFEST_DIR = ".flotilla"
MANIFEST_NAME = "SHA256SUMS"
CHUNK = 1024 * 1024


def manifest_path(job: Job) -> Path:
    return job.data_dir / MANIFEST_DIR / MANIFEST_NAME


class ChecksumManifest(PostProcessor):
    """`<job folder>/.flotilla/SHA256SUMS` in `sha256sum -c` format, hashed in 1 MiB chunks (flat memory),
    for every job whose files are in DATA_DIR, when the operator turns on `CHECKSUM_MANIFEST`."""

    name = "checksum_manifest"
    label = "Checksum manifest"
    order = 10  # first: it hashes the files as they came home, before slower work reads them

    def wants(self, job: Job) -> bool:
        # Files that stayed on a torrent server (no path mapping) are not here to hash.
        return settings.CHECKSUM_MANIFEST and job.data_deleted_at is None and job.data_dir.is_dir()

    def run(self, job: Job, report: Report) -> None:
        files = list(job.files.order_by("path").values_list("path", "size_bytes"))
        if any(path.split("/", 1)[0] == MANIFEST_DIR for path, _ in files):
            raise PostProcessError(f"The download has its own '{MANIFEST_DIR}' folder; no manifest was written.",
                                   code="checksum_path_taken")
        total, done, lines = sum(size for _, size in files), 0, []
        report.progress(0, total)
        for path, _ in files:
            digest = hashlib.sha256()
            try:
                with safe_join(job.data_dir, path).open("rb") as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        done += len(chunk)
                        report.progress(done, total, message=path)
            except (OSError, UnsafePath) as exc:
                raise PostProcessError(f"Could not read {path}: {exc}", code="checksum_unreadable") from exc
            lines.append(f"{digest.hexdigest()}  {path}\n")
        target = manifest_path(job)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{MANIFEST_NAME}.part")
        partial.write_text("".join(lines))
        os.replace(partial, target)  # the manifest appears whole or not at all
        report.progress(total, total)
