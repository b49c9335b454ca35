"""Share links: a public link to one file or a whole job, for someone without an account.

The owner chooses the expiry (at most SHARE_MAX_DAYS ahead), an optional download limit, and may revoke the
link. Every byte sent through it is metered on the owner (checked against their transfer allowance first)
and on the link. What counts as one download: a GET whose body starts at byte 0 (a whole file, a whole zip,
or a Range from 0). A Range that continues later in the body is a resume, not a new download: it is served
while the link is live, even once the limit is reached, but only within a byte budget of `max_downloads` + 1
times the size of what it asks for (the extra one for bytes lost by cut connections), so resumes cannot be
used to fetch without end.
"""

from __future__ import annotations

import datetime as dt
import secrets
import stat
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from accounts.audit import record_audit
from config.crypto import keyed_hash
from config.errors import DomainError, ValidationFailed
from downloads.models import Job, JobFile
from downloads.paths import UnsafePath, safe_join
from streaming import files, zips
from streaming.links import basename, zip_name
from streaming.models import Share

# Shown on the page a visitor sees, per state: what happened, never who or what was shared.
GONE_TEXT = {
    Share.State.REVOKED: "This link was turned off by the person who shared it.",
    Share.State.EXPIRED: "This link has expired.",
    Share.State.EXHAUSTED: "This link has been used as many times as it allows.",
}


class ShareNotFound(DomainError):
    code = "not_found"
    http_status = 404


class ShareGone(DomainError):
    """A link that existed but can no longer be used (410): `state` says why."""

    code = "share_gone"
    http_status = 410

    def __init__(self, state: str):
        super().__init__(GONE_TEXT.get(state, "This link can no longer be used."), state=state)
        self.state = state


class DataGone(DomainError):
    code = "data_deleted"
    http_status = 410


# --- the owner's side ------------------------------------------------------------------------------------


def max_expiry(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) + dt.timedelta(days=settings.SHARE_MAX_DAYS)


def create_share(user, *, job_id: int, file_id: int | None = None, expires_at: dt.datetime | None = None,
                 max_downloads: int | None = None) -> Share:
    """A new link to the user's job (or one file of it). Another user's job or file is a 404."""
    job = Job.objects.for_user(user).filter(pk=job_id).first()
    if job is None:
        raise ShareNotFound("Not found.")
    jobfile = None
    if file_id is not None:
        jobfile = JobFile.objects.filter(job=job, pk=file_id).first()
        if jobfile is None:
            raise ShareNotFound("Not found.")
    if job.data_deleted_at is not None:
        raise DomainError("The files of this download were removed.", code="data_deleted", http_status=409)
    now = timezone.now()
    expires_at = expires_at or min(now + dt.timedelta(days=7), max_expiry(now))
    if expires_at <= now:
        raise ValidationFailed("The expiry must be in the future.", code="expiry_in_past")
    if expires_at > max_expiry(now) + dt.timedelta(minutes=1):  # a minute of slack for the client's clock
        raise ValidationFailed(f"A link may last at most {settings.SHARE_MAX_DAYS} days.", code="expiry_too_far")
    if max_downloads is not None and max_downloads < 1:
        raise ValidationFailed("The download limit must be at least 1.", code="invalid")
    token = secrets.token_hex(20)
    with transaction.atomic():
        share = Share.objects.create(user=user, job=job, jobfile=jobfile, token=token, token_hash=keyed_hash(token),
                                     created_at=now, expires_at=expires_at, max_downloads=max_downloads)
        record_audit("share.create", actor=user, target=share, job=job.pk, file=file_id,
                     expires_at=expires_at.isoformat(), max_downloads=max_downloads)
    return share


def revoke_share(user, share_id: int, *, actor=None) -> Share:
    """Turn the user's link off (once; revoking again changes nothing). Another user's link is a 404.
    `actor`: who did it when not the owner (an operator in the admin)."""
    share = Share.objects.for_user(user).filter(pk=share_id).first()
    if share is None:
        raise ShareNotFound("Not found.")
    with transaction.atomic():
        if Share.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            record_audit("share.revoke", actor=actor or user, target=share, job=share.job_id)
    share.refresh_from_db()
    return share


def list_shares(user, *, job_id: int | None = None):
    shares = Share.objects.for_user(user).select_related("jobfile")
    return shares.filter(job_id=job_id) if job_id is not None else shares


def share_url(share: Share) -> str:
    return reverse("share:page", args=[share.token])


# --- the visitor's side ----------------------------------------------------------------------------------


def find_share(token: str, *, allow_exhausted: bool = False) -> Share:
    """The live share a token opens: unknown → 404; revoked, expired (or exhausted, unless allowed) → 410."""
    if not token or len(token) > 64:
        raise ShareNotFound("Not found.")
    share = (Share.objects.select_related("job", "jobfile", "user")
             .filter(token_hash=keyed_hash(token), user__is_active=True).first())
    if share is None or not secrets.compare_digest(share.token, token):
        raise ShareNotFound("Not found.")
    state = share.state()
    if state != Share.State.ACTIVE and not (allow_exhausted and state == Share.State.EXHAUSTED):
        raise ShareGone(state)
    if share.job.data_deleted_at is not None:
        raise DataGone("The shared files were removed.")
    return share


def shared_files(share: Share) -> list[JobFile]:
    """The files a visitor may fetch: the one file, or every complete file of the job."""
    if share.jobfile_id is not None:
        return [share.jobfile]
    return [f for f in share.job.files.order_by("path") if f.is_complete]


def file_target(share: Share, file_id: int) -> files.FileTarget:
    """One file of the share, on disk inside its job (no `..`, no symlink out), metered on the owner."""
    jobfile = next((f for f in shared_files(share) if f.pk == file_id), None)
    if jobfile is None:
        raise ShareNotFound("Not found.")
    try:
        path = safe_join(share.job.data_dir, jobfile.path).resolve()
        st = path.stat()
    except (UnsafePath, OSError):
        raise ShareNotFound("Not found.") from None
    if not stat.S_ISREG(st.st_mode):
        raise ShareNotFound("Not found.")
    return files.FileTarget(share.user, share.job_id, jobfile, path, st.st_size, st.st_mtime_ns, st.st_ino)


def zip_target(share: Share) -> zips.ZipTarget:
    if share.jobfile_id is not None:
        raise ShareNotFound("Not found.")
    return zips.zip_of(share.job, "")


@dataclass(frozen=True)
class Links:
    """The visitor's page: a file's link per shared file, and the zip's for a whole job."""

    files: list[tuple[JobFile, str]]
    zip_url: str | None


def page_links(share: Share) -> Links:
    found = [(f, reverse("share:file", args=[share.token, f.pk, basename(f.path)])) for f in shared_files(share)]
    zip_url = None
    if share.jobfile_id is None and found:
        zip_url = reverse("share:zip", args=[share.token, f"{zip_name(share.job, '')}.zip"])
    return Links(found, zip_url)


def start_download(share: Share, *, first_byte: int, length: int, full_size: int) -> None:
    """Count a download that starts at byte 0 (refused once the limit is reached, in one conditional UPDATE so
    two visitors cannot both take the last one); let a resume through within the byte budget."""
    now = timezone.now()
    live = Share.objects.filter(pk=share.pk, revoked_at__isnull=True, expires_at__gt=now)
    if first_byte == 0:
        taken = live.filter(Q(max_downloads__isnull=True) | Q(download_count__lt=F("max_downloads"))).update(
            download_count=F("download_count") + 1)
        if not taken:
            share.refresh_from_db()
            raise ShareGone(share.state(now))
        return
    # One representation's worth of slack: a cut connection is metered for what left the server, including
    # what was lost in socket buffers on the way.
    if share.max_downloads is not None and share.bytes_sent + length > (share.max_downloads + 1) * full_size:
        raise ShareGone(Share.State.EXHAUSTED)
    if not live.exists():
        share.refresh_from_db()
        raise ShareGone(share.state(now))


def count_bytes(share_id: int, sent: int) -> None:
    if sent:
        Share.objects.filter(pk=share_id).update(bytes_sent=F("bytes_sent") + sent)
