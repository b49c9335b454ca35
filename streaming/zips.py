"""A folder of a job (or the whole job) as a zip generated while it is sent, behind a signed link."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zipstream

from billing import services as billing
from downloads.models import Job
from downloads.paths import UnsafePath, clean_relative, safe_join
from streaming.links import ZIP_SALT, DataDeleted, LinkNotFound, load_token, zip_name
from streaming.sending import PRIVATE_HEADERS, Delivery, content_disposition


@dataclass(frozen=True)
class ZipTarget:
    user: Any
    job: Job
    folder: str
    stream: zipstream.ZipStream

    @property
    def size(self) -> int:
        return len(self.stream)


def resolve_zip(token: str) -> ZipTarget:
    """A sized, not yet generated zip of a job folder ("" = whole job) for a fresh link of an active owner."""
    data = load_token(token, ZIP_SALT, {"u": int, "j": int, "p": str})
    job = Job.objects.select_related("user").filter(pk=data["j"], user_id=data["u"], user__is_active=True).first()
    folder = data["p"]
    if job is None:
        raise LinkNotFound("Not found.")
    if job.data_deleted_at is not None:
        raise DataDeleted("The files of this download were removed.")
    if folder:
        try:
            clean_relative(folder)
        except UnsafePath:
            raise LinkNotFound("Not found.") from None
    stream = build_zip(job, folder)
    if stream.is_empty():
        raise LinkNotFound("No files of this folder are on disk.")
    return ZipTarget(job.user, job, folder, stream)


def _plain_file(root: Path, relative: str) -> Path | None:
    """The file at `relative` if it is a regular file reached without any symlink on the way, else None."""
    try:
        candidate = safe_join(root, relative)
        resolved = candidate.resolve(strict=True)
        st = candidate.lstat()
    except (UnsafePath, OSError):
        return None
    if resolved != root.resolve() / relative or not stat.S_ISREG(st.st_mode):
        return None
    return resolved


def build_zip(job: Job, folder: str) -> zipstream.ZipStream:
    """Queue (not read) every file of `folder` that is on disk; names in the zip are relative to `folder`.

    Entries are STORED (media does not compress) and the stream is sized, so Content-Length is known before the
    first byte. The stream reads each file to its end: a file that changes size while it is sent makes
    zipstream raise, which cuts the response short instead of sending a corrupt archive.
    """
    prefix = f"{folder}/" if folder else ""
    stream = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    # Filtered again in Python: `startswith` is case-insensitive on SQLite.
    for jobfile in job.files.filter(path__startswith=prefix).order_by("path"):
        if not jobfile.path.startswith(prefix):
            continue
        path = _plain_file(job.data_dir, jobfile.path)
        if path is None:
            continue
        stream.add_path(str(path), jobfile.path[len(prefix):], recurse=False)
    return stream


def plan_zip(target: ZipTarget) -> Delivery:
    """Headers of a zip download, after the quota check on its exact (sized) length."""
    size = target.size
    billing.check_transfer(target.user, size)
    headers = {
        "Content-Type": "application/zip",
        "Content-Length": str(size),
        "Content-Disposition": content_disposition(f"{zip_name(target.job, target.folder)}.zip", inline=False),
        "Accept-Ranges": "none",
        **PRIVATE_HEADERS,
    }
    return Delivery(200, headers, {"job": target.job.pk, "folder": target.folder, "zip": True})
