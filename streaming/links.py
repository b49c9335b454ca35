"""Signed short-lived links and the job's file listing that carries them.

A link is the credential: `/d/f/<token>/<name>` carries a signed {user, file} pair (and `/d/z/…` a signed
{user, job, folder}), so media players and curl can use it without a session. The signature expires after
SIGNED_URL_MAX_AGE seconds; on every use the user must still be active and still own the job (streaming/files.py,
streaming/zips.py resolve the token again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

from config.errors import DomainError
from downloads import playable
from downloads.models import Job, JobFile

FILE_SALT = "flotilla.delivery.file"  # the salts are part of every link already handed out: never rename them
ZIP_SALT = "flotilla.delivery.zip"


class LinkNotFound(DomainError):
    code = "not_found"
    http_status = 404


class LinkExpired(DomainError):
    code = "link_expired"
    http_status = 410


class DataDeleted(DomainError):
    code = "data_deleted"
    http_status = 410


def file_token(user_id: int, file_id: int) -> str:
    return signing.dumps({"u": user_id, "f": file_id}, salt=FILE_SALT, compress=True)


def zip_token(user_id: int, job_id: int, folder: str) -> str:
    return signing.dumps({"u": user_id, "j": job_id, "p": folder}, salt=ZIP_SALT, compress=True)


def load_token(token: str, salt: str, keys: dict[str, type]) -> dict[str, Any]:
    try:
        data = signing.loads(token, salt=salt, max_age=settings.SIGNED_URL_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkExpired("This download link has expired; open the job again for a fresh one.") from None
    except signing.BadSignature:
        raise LinkNotFound("Not found.") from None
    # Only we can sign, but a payload of the wrong shape (an old format, a bug) must still be a clean 404.
    if not isinstance(data, dict) or set(data) != set(keys):
        raise LinkNotFound("Not found.")
    if any(type(data[key]) is not kind for key, kind in keys.items()):
        raise LinkNotFound("Not found.")
    return data


def file_link(user_id: int, jobfile: JobFile) -> str:
    return reverse("delivery:file", args=[file_token(user_id, jobfile.pk), basename(jobfile.path)])


def zip_link(user_id: int, job: Job, folder: str = "") -> str:
    return reverse("delivery:zip", args=[zip_token(user_id, job.pk, folder), f"{zip_name(job, folder)}.zip"])


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def zip_name(job: Job, folder: str) -> str:
    """A filename-safe name for a zip: the folder's own name, or the job's name for the whole job."""
    raw = basename(folder) if folder else (job.name or "")
    cleaned = "".join("_" if ch in '/\\"' or ord(ch) < 32 or ord(ch) == 127 else ch for ch in raw).strip(" .")
    return cleaned[:150] or f"job-{job.pk}"


# --- the file listing ----------------------------------------------------------------------------------


def job_listing(job: Job, user, absolute: Callable[[str], str]) -> dict[str, Any]:
    """The files API body: flat file list, nested tree and whole-job zip link (no links once data is deleted)."""
    deleted = job.data_deleted_at is not None
    files = []
    for jobfile in job.files.all():
        entry: dict[str, Any] = {
            "id": jobfile.pk,
            "path": jobfile.path,
            "size_bytes": jobfile.size_bytes,
            "completed_bytes": jobfile.completed_bytes,
            "mime_type": jobfile.mime_type,
            "is_complete": jobfile.is_complete,
            "download_url": None if deleted else absolute(file_link(user.pk, jobfile)),
            # The player page (it streams while the download goes on), for video and audio only.
            "play_url": None if deleted or not playable.is_playable(jobfile.path, jobfile.mime_type)
            else reverse("delivery:player-file", args=[job.pk, jobfile.pk]),
        }
        files.append(entry)
    zip_url = None if deleted or not files else absolute(zip_link(user.pk, job))
    tree = build_tree(files, zip_url=None if deleted else (lambda folder: absolute(zip_link(user.pk, job, folder))))
    return {"job": job.pk, "files": files, "tree": tree, "zip_url": zip_url, "expires_in": settings.SIGNED_URL_MAX_AGE}


@dataclass
class _Dir:
    name: str
    path: str
    size_bytes: int = 0
    dirs: dict[str, _Dir] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)


def build_tree(files: Iterable[dict[str, Any]], *, zip_url: Callable[[str], str] | None) -> list[dict[str, Any]]:
    """Nest flat file entries (with "path") into folders; each folder gets its total size and, if given, a zip."""
    root = _Dir("", "")
    for entry in files:
        *parents, name = entry["path"].split("/")
        node = root
        for depth, part in enumerate(parents):
            node = node.dirs.setdefault(part, _Dir(part, "/".join(parents[: depth + 1])))
            node.size_bytes += entry["size_bytes"]
        node.files.append({"name": name, "path": entry["path"], "type": "file", "id": entry["id"],
                           "size_bytes": entry["size_bytes"], "download_url": entry["download_url"]})
    return _children(root, zip_url)


def _children(node: _Dir, zip_url: Callable[[str], str] | None) -> list[dict[str, Any]]:
    dirs = [
        {"name": d.name, "path": d.path, "type": "dir", "size_bytes": d.size_bytes,
         "zip_url": zip_url(d.path) if zip_url else None, "children": _children(d, zip_url)}
        for d in sorted(node.dirs.values(), key=lambda d: d.name)
    ]
    return dirs + sorted(node.files, key=lambda f: f["name"])
