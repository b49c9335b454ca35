"""Deleting one file of a job (`DELETE /api/v1/files/{id}/`, the file tree's Delete button).

Only once the job has stopped (completed, failed or cancelled). While a backend still runs the job it owns
the files: the engine would fetch a deleted piece again or fail the torrent on the next read while
seeding, and a remote server would never hear of it. So a running or seeding job answers 409
`job_running`; the user cancels it (keeping data) first, or deletes the whole job. "Deselecting" a file
of a running torrent is a different feature (file priorities) and not what a Delete button promises.

The file leaves the disk (a path checked by paths.safe_join; a symlink is removed, never followed), its
JobFile row is deleted, the job's size shrinks by the file's size — which is what billing's storage figure
sums — and a `files` event tells open pages to reload the tree. A job whose last file goes is marked
data-deleted, like one cleaned by retention.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypedDict

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.audit import record_audit
from config.errors import Conflict
from downloads import events
from downloads.models import TERMINAL, EventKind, Job, JobFile
from downloads.paths import safe_join

log = logging.getLogger(__name__)

# Ids past a signed 64-bit integer cannot exist; looking them up would overflow the database driver.
_MAX_ID = 2**63 - 1


class FileDeletedData(TypedDict):
    file: int
    path: str
    size_bytes: int | None  # the job's new size (what the header shows)
    downloaded_bytes: int
    remaining: int  # files left in the job


class JobRunning(Conflict):
    code = "job_running"


def owned_files(user):
    """The one place that scopes files to their owner: another user's file is simply not there (a 404)."""
    return JobFile.objects.filter(job__in=Job.objects.for_user(user))


def owned_file(user, file_id: int) -> JobFile:
    if not 0 < file_id <= _MAX_ID:
        raise Http404("No such file.")
    return get_object_or_404(owned_files(user).select_related("job").defer("job__magnet", "job__torrent"),
                             pk=file_id)


def delete_file(user, jobfile: JobFile) -> Job:
    """Delete one file of a stopped job: disk, row, the job's size, an event and an audit row."""
    with transaction.atomic():
        # Lock the job: a retry (back to queued) or a second delete of the same file waits for us.
        job = Job.objects.select_for_update().defer("magnet", "torrent").get(pk=jobfile.job_id)
        if job.status not in TERMINAL:
            raise JobRunning(
                f"The job is {job.get_status_display().lower()}: stop it (cancel and keep the data) before "
                "deleting single files, or delete the whole download.")
        deleted, _ = JobFile.objects.filter(pk=jobfile.pk).delete()
        if not deleted:
            return job  # deleted meanwhile by another request: nothing left to do
        _unlink(job.data_dir, jobfile.path)
        remaining = JobFile.objects.filter(job=job).count()
        changes = {
            "downloaded_bytes": Greatest(F("downloaded_bytes") - Value(jobfile.completed_bytes), Value(0)),
            "updated_at": timezone.now(),
        }
        if job.size_bytes is not None:
            changes["size_bytes"] = Greatest(F("size_bytes") - Value(jobfile.size_bytes), Value(0))
        if not remaining:
            changes["data_deleted_at"] = timezone.now()
        Job.objects.filter(pk=job.pk).update(**changes)
        job.refresh_from_db(fields=["size_bytes", "downloaded_bytes", "data_deleted_at", "updated_at"])
        events.emit(job, EventKind.FILES, "deleted", FileDeletedData(
            file=jobfile.pk, path=jobfile.path, size_bytes=job.size_bytes, downloaded_bytes=job.downloaded_bytes,
            remaining=remaining))
        record_audit("file.delete", actor=user, target=jobfile, job=job.pk, path=jobfile.path,
                     size_bytes=jobfile.size_bytes)
    log.info("file deleted", extra={"job": job.pk, "file": jobfile.pk, "size_bytes": jobfile.size_bytes})
    return job


def _unlink(root: Path, relative: str) -> None:
    """Remove the file (missing is fine: retention or the user may have removed it), then the folders it
    leaves empty, up to but not including the job's folder. A failure raises and rolls the rows back."""
    path = safe_join(root, relative)
    if path.is_dir() and not path.is_symlink():
        raise Conflict("That path is a folder on disk, not a file.", code="not_a_file")
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty (or already gone): stop climbing
            break
        parent = parent.parent
