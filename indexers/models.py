"""Indexers (trackers and feeds a user searches), their health, stored search results, and where a job came from.

An indexer belongs to one user (their own tracker account) or, with no owner, to the operator: shared with
every user, or only with the users of one plan. Credentials (a MyAnonamouse `mam_id`, a Torznab API key) are
encrypted at rest and write-only: no response, log line or audit row ever carries them.

Health is written by searches and tests: `success_rate` and `avg_response_ms` are moving averages;
`consecutive_failures` backs an indexer off (`backoff_until`, exponential) and the next success clears it.
Search results are stored per user with an expiry (SEARCH_RESULT_TTL_DAYS), so a grab works long after the
search; `guid_hash` makes the (user, indexer, guid) key indexable whatever the guid's length.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.crypto import EncryptedCharField, EncryptedTextField


class Kind(models.TextChoices):
    MYANONAMOUSE = "myanonamouse", "MyAnonamouse"
    TORZNAB = "torznab", "Torznab (Jackett, Prowlarr, any feed)"
    YTS = "yts", "YTS"
    NYAA = "nyaa", "Nyaa"


class Privacy(models.TextChoices):
    PUBLIC = "public", "Public"
    SEMI_PRIVATE = "semi_private", "Semi-private"
    PRIVATE = "private", "Private"


class IndexerQuerySet(models.QuerySet):
    def for_user(self, user):
        """The one place indexers are scoped: the user's own, the operator's shared with everyone, and those
        shared with the user's plan."""
        from billing.services import current_plan

        shared = Q(owner__isnull=True) & (Q(shared_with_plan__isnull=True) | Q(shared_with_plan=current_plan(user)))
        return self.filter(Q(owner=user) | shared)

    def owned_by(self, user):
        """What a user may change: only their own (shared ones are the operator's, changed in the admin)."""
        return self.filter(owner=user)

    def enabled(self):
        return self.filter(enabled=True)


class Indexer(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                              related_name="indexers", help_text="Empty: the operator's, shared.")
    shared_with_plan = models.ForeignKey("billing.Plan", on_delete=models.SET_NULL, null=True, blank=True,
                                         related_name="+",
                                         help_text="Operator's indexer: only users of this plan (empty: all).")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.URLField(max_length=500, help_text="Base URL (Torznab: the feed's API URL).")
    credentials = EncryptedTextField(blank=True, default="")  # JSON object; see `secrets`
    enabled = models.BooleanField(default=True)
    priority = models.PositiveSmallIntegerField(default=25, validators=[MinValueValidator(1), MaxValueValidator(50)],
                                                help_text="1 (first) to 50, like Prowlarr.")
    categories = models.JSONField(default=list, blank=True,
                                  help_text="Newznab ids searched by default (empty: all the indexer has).")
    timeout = models.FloatField(default=10.0, validators=[MinValueValidator(1.0), MaxValueValidator(60.0)],
                                help_text="Seconds a search of this indexer may take.")
    request_interval = models.FloatField(default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(600.0)],
                                         help_text="Seconds between two requests to it, across all processes.")
    privacy = models.CharField(max_length=16, choices=Privacy.choices, default=Privacy.PUBLIC)

    # Capabilities as last seen (Torznab t=caps; fixed for the other kinds).
    caps = models.JSONField(default=dict, blank=True)
    caps_at = models.DateTimeField(null=True, blank=True)
    # Health
    avg_response_ms = models.FloatField(null=True, blank=True)
    success_rate = models.FloatField(default=1.0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    backoff_until = models.DateTimeField(null=True, blank=True)
    # What the tracker says about the account (MyAnonamouse: ratio, class, unsatisfied count), at the last test.
    account_status = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IndexerQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="indexer_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def shared(self) -> bool:
        return self.owner_id is None

    @property
    def secrets(self) -> dict[str, str]:
        """The decrypted credentials (never log or return them)."""
        try:
            value = json.loads(self.credentials or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def set_secrets(self, values: dict[str, str]) -> None:
        self.credentials = json.dumps({k: v for k, v in values.items() if v}, sort_keys=True)

    def in_backoff(self, now=None) -> bool:
        return bool(self.backoff_until and self.backoff_until > (now or timezone.now()))

    def clean(self) -> None:
        if not isinstance(self.categories, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 < c < 1_000_000 for c in self.categories):
            raise ValidationError({"categories": "A list of Newznab category ids, e.g. [3030, 7020]."})


class IndexerThrottle(models.Model):
    """The database rate limiter's state (when no Redis): the earliest time, in microseconds since the epoch,
    the next request to this indexer may leave. Claimed with a conditional UPDATE (compare and set)."""

    indexer = models.OneToOneField(Indexer, on_delete=models.CASCADE, primary_key=True, related_name="+")
    next_at_us = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.indexer_id}: {self.next_at_us}"


def guid_digest(guid: str) -> str:
    return hashlib.sha256(guid.encode("utf-8", "surrogatepass")).hexdigest()


class SearchResultQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def live(self):
        return self.filter(expires_at__gt=timezone.now())


class SearchResult(models.Model):
    """One normalized release a user's search returned, kept until `expires_at` so it can be grabbed later.

    The upstream download link and magnet may hold the user's passkey: encrypted, and never in a response
    (a grab fetches them server-side). The info-hash of a private torrent is secret too: encrypted, with a
    keyed hash beside it for duplicate merging."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    indexer = models.ForeignKey(Indexer, on_delete=models.CASCADE, related_name="results")
    guid = models.TextField()
    guid_hash = models.CharField(max_length=64)
    title = models.CharField(max_length=500)
    size = models.BigIntegerField(default=0)
    seeders = models.IntegerField(default=0)
    leechers = models.IntegerField(default=0)
    grabs = models.IntegerField(default=0)
    files = models.IntegerField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    categories = models.JSONField(default=list)
    flags = models.JSONField(default=list)
    info_hash = EncryptedCharField(max_length=40, blank=True, default="")
    info_hash_hmac = models.CharField(max_length=64, blank=True, db_index=True)
    info_url = models.URLField(max_length=1000, blank=True)
    download_url = EncryptedTextField(blank=True, default="")
    magnet = EncryptedTextField(blank=True, default="")
    quality = models.JSONField(default=dict, blank=True)
    extra = models.JSONField(default=dict, blank=True)  # authors, narrators, series, language, format, …
    score = models.FloatField(default=0.0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    objects = SearchResultQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "indexer", "guid_hash"], name="searchresult_key")]

    def __str__(self) -> str:
        return self.title


class JobSource(models.Model):
    """Which indexer and result a job was grabbed from (downloads/ never imports indexers: this points at Job).
    The result may expire; its guid, title and info URL are copied here."""

    job = models.OneToOneField("downloads.Job", on_delete=models.CASCADE, primary_key=True,
                               related_name="indexer_source")
    indexer = models.ForeignKey(Indexer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    result = models.ForeignKey(SearchResult, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    indexer_name = models.CharField(max_length=100)
    guid = models.TextField()
    title = models.CharField(max_length=500)
    info_url = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.indexer_name}: {self.title}"
