"""A tracker's rules, and each tracker job's seeding ledger.

SeedingLedger life::

    (downloading) ──complete──► seeding ──seeded ≥ min_seed_time──► clock satisfied ──the tracker no longer
                                   │       (Flotilla's clock)                         lists it as unsatisfied──►
                                   └─ window passed unsatisfied: hit & run    satisfied (both agree)
                                                                                 │ policy: remove
                                                                                 ▼
                                                                    released (left the client)
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from downloads.models import Job


def _default_clients() -> dict:
    return {}


class TrackerRules(models.Model):
    """One private tracker's rules, keyed by the indexer kind whose grabs they govern ("myanonamouse").

    `approved_clients` maps a server type to its minimum version, or to {"min": "4.3.9", "exclude": ["5.0.0"]};
    a type not listed is not approved. The unsatisfied limit is never stored: it is read from the account."""

    tracker = models.CharField(max_length=32, unique=True, help_text="The indexer kind, e.g. myanonamouse.")
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    min_seed_time = models.DurationField(default=dt.timedelta(hours=72),
                                         help_text="Seeding needed per torrent (days hh:mm:ss).")
    seed_window = models.DurationField(default=dt.timedelta(days=30),
                                       help_text="Within this long after the download completed.")
    satisfied_margin = models.DurationField(
        default=dt.timedelta(hours=1),
        help_text="Extra seeding before Flotilla treats the tracker as agreeing (it counts announces, not "
                  "seconds).")
    ratio_floor = models.FloatField(default=1.0, help_text="The account's ratio must stay at or above this.")
    upload_buffer_bytes = models.BigIntegerField(
        default=0, help_text="Upload credit kept in reserve above the floor (a new account's starting credit "
                             "is spent down to this, never below).")
    partial_downloads = models.BooleanField(default=False, help_text="Whether deselecting files is allowed.")
    approved_clients = models.JSONField(default=_default_clients, blank=True)
    engine_allowed = models.BooleanField(default=False,
                                         help_text="Whether Flotilla's built-in engine may run this tracker's jobs.")
    keep_seeding = models.BooleanField(default=True, help_text="Keep seeding once satisfied (off: remove the "
                                                               "torrent from the client when both clocks agree).")
    # Alert thresholds (audiobooks/compliance/alerts.py).
    ratio_margin = models.FloatField(default=0.1, help_text="Alert when the account's ratio is below the floor "
                                                             "plus this.")
    unsatisfied_margin = models.PositiveSmallIntegerField(
        default=1, help_text="Alert when the unsatisfied count reaches the account's limit minus this.")
    inactive_after = models.DurationField(
        default=dt.timedelta(hours=1), help_text="Alert when an unsatisfied torrent has not seeded (not reported, or "
                                                 "its seeding counter stood still) for this long.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tracker"]
        verbose_name_plural = "tracker rules"

    def __str__(self) -> str:
        return self.name or self.tracker

    def clean(self) -> None:
        if self.ratio_floor < 0 or self.upload_buffer_bytes < 0 or self.ratio_margin < 0:
            raise ValidationError("The ratio floor, its margin and the upload buffer cannot be negative.")
        if not isinstance(self.approved_clients, dict) or not all(
                isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("min", ""), str)
                                       and isinstance(v.get("exclude", []), list))
                for v in self.approved_clients.values()):
            raise ValidationError({"approved_clients": 'A type maps to "1.2.3" or {"min": "1.2.3", "exclude": [...]}'})


class SeedingLedger(models.Model):
    """Seeding time a tracker job has accrued, by Flotilla's clock: the client's own counter added up in deltas,
    so it survives restarts of Flotilla (it is stored) and of the client (a counter that went back is a new
    base, never a loss of what was already counted)."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="seeding_ledger")
    tracker = models.CharField(max_length=32, db_index=True)
    seeded_seconds = models.BigIntegerField(default=0)
    reported_seconds = models.BigIntegerField(default=0, help_text="The client's counter at the last sight.")
    incarnation = models.CharField(max_length=100, blank=True,
                                   help_text="The torrent's identity in its client (backend + added time).")
    completed_at = models.DateTimeField(null=True, blank=True)
    satisfied_at = models.DateTimeField(null=True, blank=True, help_text="Flotilla's clock reached the rules' time.")
    tracker_satisfied_at = models.DateTimeField(
        null=True, blank=True, help_text="The tracker's own list no longer had it as unsatisfied (read after "
                                         "Flotilla's clock, plus the margin, was satisfied).")
    released_at = models.DateTimeField(null=True, blank=True, help_text="Removed from the client (policy).")
    checked_at = models.DateTimeField(null=True, blank=True)
    seeding_seen_at = models.DateTimeField(null=True, blank=True,
                                           help_text="The last sync that saw the client's seeding counter grow.")
    ratio = models.FloatField(null=True, blank=True, help_text="The torrent's ratio as its client last reported it.")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.tracker}: job {self.job_id}, {self.seeded_seconds} s"

    @property
    def satisfied(self) -> bool:
        """Both clocks agree: Flotilla's seconds and the tracker's own snatch list."""
        return self.satisfied_at is not None and self.tracker_satisfied_at is not None

    def window_ends_at(self, rules: TrackerRules) -> dt.datetime | None:
        return self.completed_at + rules.seed_window if self.completed_at else None

    def hit_and_run(self, rules: TrackerRules, now: dt.datetime | None = None) -> bool:
        ends = self.window_ends_at(rules)
        return not self.satisfied and ends is not None and (now or timezone.now()) > ends

    def inactive(self, rules: TrackerRules, now: dt.datetime | None = None) -> bool:
        """Unsatisfied, still meant to be in its client, complete, and not seen seeding for `inactive_after`
        (the client no longer reports it, or its counter stood still: stopped, errored, client down)."""
        last = self.seeding_seen_at or self.completed_at
        return (not self.satisfied and self.released_at is None and last is not None
                and (now or timezone.now()) - last > rules.inactive_after)


class TrackerAccount(models.Model):
    """What the compliance sweep last learned about an indexer's tracker session (the account figures themselves
    are the indexer's `account_status`)."""

    indexer = models.OneToOneField("indexers.Indexer", on_delete=models.CASCADE, primary_key=True,
                                   related_name="tracker_account")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="The last account read, whatever its outcome.")
    ok_at = models.DateTimeField(null=True, blank=True, help_text="The last account read that succeeded.")
    error_code = models.CharField(max_length=64, blank=True, help_text="The last read's failure; empty: it worked.")

    def __str__(self) -> str:
        return f"{self.indexer_id}: {self.error_code or 'ok'}"


class TrackerAlertQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def open(self):
        return self.filter(cleared_at__isnull=True)


class TrackerAlert(models.Model):
    """A tracker-compliance condition the sweep found (audiobooks/compliance/alerts.py). One open alert per
    (subject, kind): raised once (and mailed once) when the condition starts, cleared when it ends; a later
    return of the condition is a new alert. The subject is a job (inactive torrent) or an indexer (its
    account: session, ratio, unsatisfied count). `user` is whom it concerns; empty for an operator's shared
    indexer (the health page only)."""

    class Kind(models.TextChoices):
        SESSION_EXPIRED = "session_expired", "Session expired"
        RATIO_NEAR_FLOOR = "ratio_near_floor", "Ratio near the floor"
        UNSATISFIED_NEAR_LIMIT = "unsatisfied_near_limit", "Unsatisfied torrents near the limit"
        INACTIVE_UNSATISFIED = "inactive_unsatisfied", "Torrent inactive while unsatisfied"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="+")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, null=True, blank=True, related_name="tracker_alerts")
    indexer = models.ForeignKey("indexers.Indexer", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="+")
    subject = models.CharField(max_length=40, help_text='"job:<id>" or "indexer:<id>".')
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.CharField(max_length=500)
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = TrackerAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["subject", "kind"], condition=models.Q(cleared_at__isnull=True),
                                               name="trackeralert_one_open")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.subject})"
