"""What qBittorrent clients keep beside a job: sessions (the SID cookie), categories, tags, share limits.

These models belong to the `downloads` app (migration downloads/migrations/0004_qbittorrent_api.py) and are
imported at the end of downloads/models.py so Django registers them with the app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# qBittorrent's sentinels for per-torrent share limits.
USE_GLOBAL = -2
NO_LIMIT = -1


class QbtSession(models.Model):
    """A logged-in qBittorrent client: the SID cookie (only its SHA-256 is stored) bound to one user.

    Sliding expiry like qBittorrent's WebUI session timeout (QBITTORRENT_SESSION_SECONDS)."""

    sid_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, related_name="+",
                                help_text="The key that logged in: revoking it ends the session.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        app_label = "downloads"
        verbose_name = "qBittorrent API session"

    def __str__(self) -> str:
        return f"qBittorrent session of user {self.user_id}"


class QbtCategory(models.Model):
    """A user's qBittorrent category: its save path (echoed to clients) and the backend its new torrents run on
    ("" = the install's DEFAULT_BACKEND), e.g. "tv" on the engine, "books" on the user's Transmission."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qbt_categories")
    name = models.CharField(max_length=100)
    save_path = models.CharField(max_length=1024, blank=True)
    backend = models.CharField(max_length=64, blank=True)

    class Meta:
        app_label = "downloads"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="qbtcategory_unique_name")]
        verbose_name = "qBittorrent category"
        verbose_name_plural = "qBittorrent categories"

    def __str__(self) -> str:
        return self.name


class QbtTag(models.Model):
    """A tag the user's clients created (qBittorrent keeps a tag list apart from the torrents that carry them)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qbt_tags")
    name = models.CharField(max_length=100)

    class Meta:
        app_label = "downloads"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="qbttag_unique_name")]
        verbose_name = "qBittorrent tag"

    def __str__(self) -> str:
        return self.name


class QbtTorrent(models.Model):
    """What a qBittorrent client set on one job: category, tags, share limits and flags it reads back."""

    job = models.OneToOneField("downloads.Job", on_delete=models.CASCADE, related_name="qbt", primary_key=True)
    category = models.ForeignKey(QbtCategory, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tags = models.JSONField(default=list, blank=True)
    ratio_limit = models.FloatField(default=USE_GLOBAL, help_text="-2 = the plan's, -1 = none (the plan's cap).")
    seeding_time_limit = models.IntegerField(default=USE_GLOBAL, help_text="Minutes; -2 = the plan's, -1 = none.")
    sequential = models.BooleanField(default=False)
    first_last_piece = models.BooleanField(default=False)
    # torrents/delete without deleteFiles: qBittorrent forgets the torrent and keeps its files; the job (and
    # its files) stays in Flotilla, out of the qBittorrent clients' sight.
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "downloads"
        verbose_name = "qBittorrent torrent settings"

    def __str__(self) -> str:
        return f"qBittorrent settings of job {self.job_id}"
