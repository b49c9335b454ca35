"""Seedr.cc state: a user's connected Seedr account, a pending device-code login, and per-job Seedr state.

Tokens are seedrcc `Token`s (access token, refresh token or device code) serialised with `to_base64()` into
an encrypted column; they never leave the server, never reach a log or an API response.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.crypto import EncryptedCharField, EncryptedTextField


class AccountQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)


class SeedrAccount(models.Model):
    """One user's Seedr connection and the cached account insights (space, bandwidth, settings, devices)."""

    class State(models.TextChoices):
        CONNECTED = "connected", "Connected"
        EXPIRED = "expired", "Login expired"
        DISCONNECTED = "disconnected", "Disconnected"

    class Method(models.TextChoices):
        DEVICE = "device", "Device code"
        PASSWORD = "password", "Username and password"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="seedr_account")
    state = models.CharField(max_length=16, choices=State.choices, default=State.DISCONNECTED, db_index=True)
    method = models.CharField(max_length=16, choices=Method.choices, blank=True)
    # NULL when there is none: an encrypted "" is ciphertext like any other value and cannot be filtered on.
    token = EncryptedTextField(null=True, blank=True,
                               help_text="seedrcc Token.to_base64(): access, refresh, device code.")
    account_name = models.CharField(max_length=200, blank=True, help_text="The Seedr account's email.")
    connected_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    auto_start = models.BooleanField(default=True, help_text="New batch items start on their own.")
    insights = models.JSONField(default=dict, blank=True)
    insights_at = models.DateTimeField(null=True, blank=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = "Seedr account"

    def __str__(self) -> str:
        return f"Seedr of {self.user}"

    @property
    def is_connected(self) -> bool:
        return self.state == self.State.CONNECTED and self.token is not None


class SeedrDeviceLogin(models.Model):
    """A device-code login in progress: the user enters `user_code` on Seedr while we poll."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    device_code = EncryptedCharField(max_length=200)
    user_code = models.CharField(max_length=32)
    verification_url = models.URLField(max_length=300)
    interval = models.PositiveIntegerField(default=5)
    expires_at = models.DateTimeField()
    next_poll_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"device login of {self.user}"


class SeedrTask(models.Model):
    """What Flotilla knows about a job's life on Seedr (its torrent, then its folder) and how far its transfer
    home got (`phase`). Attempts and backoff of the transfer are the spine's (`Job.attempts`)."""

    class Phase(models.TextChoices):
        REMOTE = "remote", "Downloading on Seedr"
        TRANSFER = "transfer", "Transferring home"
        CLEANUP = "cleanup", "Cleaning up on Seedr"
        DONE = "done", "Done"

    job = models.OneToOneField("downloads.Job", on_delete=models.CASCADE, related_name="seedr")
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.REMOTE)
    torrent_id = models.BigIntegerField(null=True, blank=True)
    torrent_hash = EncryptedCharField(max_length=64, blank=True)
    torrent_name = models.CharField(max_length=500, blank=True)
    folder_id = models.BigIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField(default=timezone.now)
    moving_since = models.DateTimeField(null=True, blank=True, help_text="First sync that saw progress.")
    missing_since = models.DateTimeField(null=True, blank=True,
                                         help_text="First sync that found neither the torrent nor its folder.")
    cleared_at = models.DateTimeField(null=True, blank=True, help_text="Hidden from the Seedr queue.")

    def __str__(self) -> str:
        return f"seedr state of job {self.job_id}"
