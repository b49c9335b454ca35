"""Plans, per-user plan assignments and daily usage metering."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

GIB = 1024**3
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def default_backends() -> list[str]:
    return ["engine", "seedr", "server"]


class Plan(models.Model):
    """What a user may do. Zero in a limit field means "unlimited"."""

    name = models.CharField(max_length=64, unique=True)
    is_default = models.BooleanField(default=False, help_text="Given to new users without an assignment.")
    max_active_jobs = models.PositiveIntegerField(default=3, help_text="Jobs running at once; more wait queued.")
    max_storage_bytes = models.PositiveBigIntegerField(default=50 * GIB)
    max_job_size_bytes = models.PositiveBigIntegerField(default=20 * GIB)
    monthly_transfer_bytes = models.PositiveBigIntegerField(default=500 * GIB)
    retention_days = models.PositiveIntegerField(default=14, help_text="Days finished jobs keep their files.")
    allowed_backends = models.JSONField(
        default=default_backends, help_text='Backend kinds: "engine", "seedr", "server".'
    )
    seed_ratio_limit = models.FloatField(default=1.0, help_text="Stop seeding at this ratio (0 = no limit).")
    seed_time_limit_minutes = models.PositiveIntegerField(default=60, help_text="0 = no time limit.")
    max_concurrent_streams = models.PositiveIntegerField(
        default=10, help_text="Streams (players) a user may have open at once; 0 = unlimited.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if not isinstance(self.allowed_backends, list) or not all(
            isinstance(kind, str) and _KIND.match(kind) for kind in self.allowed_backends
        ):
            raise ValidationError({"allowed_backends": 'A list of backend kinds, e.g. ["engine", "server"].'})

    def allows_backend(self, backend: str) -> bool:
        return backend.split(":", 1)[0] in self.allowed_backends


class PlanAssignmentQuerySet(models.QuerySet):
    def current(self, at=None):
        at = at or timezone.now()
        return self.filter(starts_at__lte=at).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=at))


class PlanAssignment(models.Model):
    """A user's plan for a period; the newest current one wins, else the default plan applies."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plan_assignments")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="assignments")
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    objects = PlanAssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} → {self.plan}"

    def clean(self):
        if self.expires_at and self.starts_at and self.expires_at <= self.starts_at:
            raise ValidationError({"expires_at": "The expiry must come after the start."})


class UsageDay(models.Model):
    """One user's metered usage on one day (UTC). Incremented with F() so concurrent writers add up."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    bytes_downloaded = models.PositiveBigIntegerField(default=0)
    bytes_delivered = models.PositiveBigIntegerField(default=0)
    jobs_created = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="usage_day_unique")]

    def __str__(self) -> str:
        return f"{self.user} {self.day}"


class UpgradeRequest(models.Model):
    """A user asks for another plan (the Plans page); an operator assigns it or declines in the admin.

    No payment provider: the request is the brief's "upgrade prompt", answered by a person. At most one
    open request per user and plan."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Plan assigned"
        DECLINED = "declined", "Declined"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upgrade_requests")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="upgrade_requests")
    from_plan = models.CharField(max_length=64, blank=True, help_text="The user's plan when they asked.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "plan"], condition=models.Q(status="open"),
                                    name="upgrade_request_one_open"),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.plan} ({self.status})"
