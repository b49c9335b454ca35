"""An audiobook is a job plus the book's metadata; each user has a library folder and, optionally, an
Audiobookshelf server to tell about new books.

AudiobookJob state::

    waiting (the download runs) ──► processing ──► published
                                        │   ▲
                                        ▼   │ retry
                                      failed
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.crypto import EncryptedCharField
from downloads.models import Job


class AudiobookJobQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(job__user=user)


class AudiobookJob(models.Model):
    """A job to post-process as an audiobook, with the book's metadata (from MyAnonamouse or the user; any
    field left empty is filled from the files' own tags when the book is made)."""

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting for the download"
        PROCESSING = "processing", "Processing"
        PUBLISHED = "published", "Published"
        FAILED = "failed", "Failed"

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="audiobook")
    title = models.CharField(max_length=500, blank=True)
    authors = models.JSONField(default=list, blank=True)
    narrators = models.JSONField(default=list, blank=True)
    series = models.CharField(max_length=300, blank=True)
    sequence = models.CharField(max_length=16, blank=True, help_text="Position in the series: 1, 3.5")
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    genre = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    asin = models.CharField(max_length=16, blank=True)
    isbn = models.CharField(max_length=20, blank=True)
    cover_url = models.URLField(max_length=1000, blank=True)
    # Choices the user makes for a damaged or clashing book (both off: fail and say why).
    accept_damaged = models.BooleanField(default=False, help_text="Leave out unreadable files, keep truncated.")
    keep_both = models.BooleanField(default=False, help_text='Publish beside an existing book as "… (2)".')

    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING, db_index=True)
    step = models.CharField(max_length=16, blank=True)  # checking, merging, tagging, publishing
    step_done = models.PositiveIntegerField(default=0)
    step_total = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=500, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    published_path = models.CharField(max_length=4096, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    chapters = models.PositiveIntegerField(default=0)
    scan_status = models.CharField(max_length=200, blank=True, help_text="Audiobookshelf's answer to the scan.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AudiobookJobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.title or str(self.job)


class AudiobookSettings(models.Model):
    """A user's library folder (under the operator's AUDIOBOOK_LIBRARY_ROOT) and Audiobookshelf server."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="audiobook_settings")
    library_dir = models.CharField(max_length=500, blank=True,
                                   help_text="Relative to AUDIOBOOK_LIBRARY_ROOT; empty: the user's id.")
    abs_url = models.URLField(max_length=500, blank=True, help_text="Audiobookshelf, e.g. http://abs:13378")
    abs_token = EncryptedCharField(max_length=1000, blank=True)
    abs_library_id = models.CharField(max_length=100, blank=True)
    process_grabs = models.BooleanField(
        default=False, help_text="Make every audiobook you grab from an indexer (e.g. through AudioBookRequest) "
                                 "into a book when it finishes.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "audiobook settings"

    def __str__(self) -> str:
        return f"Audiobooks of {self.user}"


# Tracker compliance keeps its models in its own package; they belong to this app.
from audiobooks.compliance.models import (  # noqa: E402, F401
    SeedingLedger,
    TrackerAccount,
    TrackerAlert,
    TrackerRules,
)
