"""Streaming's own rows: cached CRC-32s of files sent in zips, and share links for people without an account."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.crypto import EncryptedCharField
from downloads.models import Job, JobFile


class FileChecksum(models.Model):
    """The CRC-32 of a job file as it was on disk (size, mtime, inode), learned the first time a zip sent it
    whole. A resumed zip download needs the CRCs of the entries its range covers without re-reading them
    (streaming/ziplayout.py). Stale when the file on disk no longer matches; then it is learned again."""

    jobfile = models.OneToOneField(JobFile, on_delete=models.CASCADE, related_name="zip_crc")
    size = models.PositiveBigIntegerField()
    mtime_ns = models.BigIntegerField()
    inode = models.BigIntegerField()
    crc32 = models.BigIntegerField()
    computed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.jobfile_id}: {self.crc32:08x}"

    def matches(self, size: int, mtime_ns: int, inode: int) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (size, mtime_ns, inode)


class ShareQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)


class Share(models.Model):
    """A public link to one file or a whole job, for someone without an account.

    The token is the credential: stored encrypted (so the owner can copy the link again) beside its keyed
    hash (the only way to find it). Downloads through it are metered on the owner. States, in the order they
    are checked: revoked → expired → exhausted (download limit reached) → active.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        EXHAUSTED = "exhausted", "Download limit reached"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shares")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="shares")
    jobfile = models.ForeignKey(JobFile, on_delete=models.CASCADE, null=True, blank=True, related_name="shares",
                                help_text="Empty: the whole job.")
    token = EncryptedCharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    max_downloads = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    download_count = models.PositiveIntegerField(default=0)
    bytes_sent = models.PositiveBigIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["job", "user"], name="share_job_user")]

    def __str__(self) -> str:
        return f"share {self.pk} of job {self.job_id}"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at <= now:
            return self.State.EXPIRED
        if self.max_downloads is not None and self.download_count >= self.max_downloads:
            return self.State.EXHAUSTED
        return self.State.ACTIVE
