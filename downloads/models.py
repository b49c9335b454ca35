"""The job spine: Job, Batch, JobFile, the append-only JobEvent outbox, the blocklist and heartbeats.

Job status diagram (the table `TRANSITIONS` below is the single source of truth)::

    queued ──► starting ──► fetching_metadata ──► downloading ──► seeding ──► completed
      │  ▲         │                │                 │   │          │
      │  │         └────────────────┴─────► transferring ─► processing ─► completed
      │  └── retry (failed / cancelled), requeue (engine died)
      └─► waiting (quota slot, cleanup, login) ◄──► any running state
    any non-terminal ──► paused ──► (back to where it can resume) │ cancelled │ failed
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from config.crypto import EncryptedCharField, EncryptedTextField
from config.errors import Conflict

if TYPE_CHECKING:
    from downloads.events import EventMessage


class JobConflict(Conflict):
    """A status change that cannot happen now: the one domain error behind every refused move (HTTP 409).

    Background callers that merely lose a race use `services.try_change_status`, which returns a bool."""

    code = "conflict"


class IllegalTransition(JobConflict):
    """The transition table has no move from the job's status to the target."""

    def __init__(self, job_id, current: str, target: str, detail: str | None = None):
        super().__init__(detail or f"Job {job_id}: {current} → {target} is not allowed.")
        self.current, self.target = current, target


class StaleJob(JobConflict):
    """The job's status changed between reading it and writing the new one (a conditional UPDATE matched 0 rows)."""


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTING = "starting", "Starting"
    FETCHING_METADATA = "fetching_metadata", "Fetching metadata"
    DOWNLOADING = "downloading", "Downloading"
    SEEDING = "seeding", "Seeding"
    TRANSFERRING = "transferring", "Transferring"
    PROCESSING = "processing", "Processing"
    WAITING = "waiting", "Waiting"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


S = Status
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
# Statuses that hold one of the plan's "active job" slots.
ACTIVE = frozenset(
    {S.STARTING, S.FETCHING_METADATA, S.DOWNLOADING, S.SEEDING, S.TRANSFERRING, S.PROCESSING, S.WAITING}
)
RUNNING = ACTIVE - {S.WAITING}
# Everything a running job may end in or be stopped by.
_EXITS = {S.PAUSED, S.CANCELLED, S.FAILED}

TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.STARTING, S.FETCHING_METADATA, S.DOWNLOADING, S.WAITING} | _EXITS),
    S.STARTING: frozenset(
        {S.QUEUED, S.FETCHING_METADATA, S.DOWNLOADING, S.SEEDING, S.TRANSFERRING, S.WAITING, S.COMPLETED}
        | _EXITS
    ),
    S.FETCHING_METADATA: frozenset({S.QUEUED, S.DOWNLOADING, S.SEEDING, S.WAITING, S.COMPLETED} | _EXITS),
    S.DOWNLOADING: frozenset(
        {S.QUEUED, S.FETCHING_METADATA, S.SEEDING, S.TRANSFERRING, S.PROCESSING, S.WAITING, S.COMPLETED}
        | _EXITS
    ),
    S.SEEDING: frozenset({S.QUEUED, S.DOWNLOADING, S.PROCESSING, S.COMPLETED} | _EXITS),
    S.TRANSFERRING: frozenset({S.QUEUED, S.PROCESSING, S.WAITING, S.COMPLETED} | _EXITS),
    S.PROCESSING: frozenset({S.COMPLETED, S.CANCELLED, S.FAILED}),
    S.WAITING: frozenset(
        {S.QUEUED, S.STARTING, S.FETCHING_METADATA, S.DOWNLOADING, S.SEEDING, S.TRANSFERRING, S.COMPLETED}
        | _EXITS
    ),
    S.PAUSED: frozenset(
        {S.QUEUED, S.STARTING, S.FETCHING_METADATA, S.DOWNLOADING, S.SEEDING, S.CANCELLED, S.FAILED}
    ),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.QUEUED, S.PROCESSING}),  # processing: a failed post-processing retried (admin)
    S.CANCELLED: frozenset({S.QUEUED}),
}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS[current]


def _sources(target: str, among=frozenset(Status)) -> frozenset[str]:
    return frozenset(s for s in among if target in TRANSITIONS[s])


# What each user action applies to, derived from the table so the two can never disagree (the services
# enforce these; the pages show buttons from them). Resume leaves `paused`; retry leaves a terminal status.
PAUSABLE = _sources(S.PAUSED)
RESUMABLE = _sources(S.QUEUED, among={S.PAUSED})
CANCELLABLE = _sources(S.CANCELLED)
RETRYABLE = _sources(S.QUEUED, among=TERMINAL)


class Batch(models.Model):
    """An ordered group of jobs submitted together (a multi-line magnet paste)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200, blank=True)
    backend = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.name or f"Batch {self.pk}"


class JobQuerySet(models.QuerySet):
    def for_user(self, user):
        """The one place that scopes jobs to their owner: another user's job simply is not there."""
        return self.filter(user=user)

    def active(self):
        return self.filter(status__in=ACTIVE)

    def unfinished(self):
        return self.exclude(status__in=TERMINAL)


class Job(models.Model):
    """One download owned by one user, run by one backend ("engine", "seedr" or "server:<id>")."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    position = models.PositiveIntegerField(default=0, help_text="Order inside the batch.")
    backend = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # Why the job is where it is (machine code + human sentence): "no_backend", "quota_exceeded", …
    reason_code = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    name = models.CharField(max_length=500, blank=True)
    info_hash = EncryptedCharField(max_length=64, blank=True)
    info_hash_hmac = models.CharField(max_length=64, blank=True, db_index=True)
    magnet = EncryptedTextField(blank=True)
    torrent = EncryptedTextField(blank=True, help_text="Base64 of the .torrent file, when one was given.")
    is_private = models.BooleanField(default=False)

    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    downloaded_bytes = models.PositiveBigIntegerField(default=0)
    uploaded_bytes = models.PositiveBigIntegerField(default=0)
    progress = models.FloatField(default=0.0, help_text="0.0 to 1.0")
    download_rate = models.PositiveBigIntegerField(default=0, help_text="bytes/s")
    upload_rate = models.PositiveBigIntegerField(default=0, help_text="bytes/s")
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)
    peers = models.PositiveIntegerField(default=0)
    seeds = models.PositiveIntegerField(default=0)

    remote_id = models.CharField(max_length=128, blank=True, help_text="The backend's own id for this job.")
    claimed_by = models.CharField(max_length=128, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_progress_event_at = models.DateTimeField(null=True, blank=True)
    # Backoff after transient backend errors: the dispatcher leaves the job alone until next_attempt_at.
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the downloaded bytes last grew, or the job last started running: the stall check reads it.
    progress_at = models.DateTimeField(null=True, blank=True)
    # The backends this job left by fail-over, oldest first (downloads/failover.py): it never goes back.
    failover_from = models.JSONField(default=list, blank=True)
    # A "Play without downloading" job (streaming/ephemeral.py): removed with its data once nobody has read it
    # for STREAM_IDLE_MINUTES, unless the user keeps it. last_read_at is written at most once a minute per stream.
    ephemeral = models.BooleanField(default=False, db_index=True)
    last_read_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    data_deleted_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"]),
            models.Index(fields=["user", "status"]),
            models.Index(fields=["status", "updated_at"]),
        ]

    def __str__(self) -> str:
        return self.name or f"Job {self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def data_dir(self) -> Path:
        return settings.DOWNLOADS_DIR / str(self.user_id) / str(self.pk)

    def check_transition(self, target: str) -> None:
        if not can_transition(self.status, target):
            raise IllegalTransition(self.pk, self.status, target)


# What may move a job to the next backend of its fail-over policy: trigger code → what the job's event says.
FAILOVER_TRIGGERS: dict[str, str] = {
    "seedr_queue_full": "Seedr queue full",
    "seedr_quota_exceeded": "Seedr quota exceeded",
    "seedr_size_limit": "too big for Seedr on this server",
    "stalled": "stalled with no seeders",
    "backend_offline": "backend offline past the grace time",
    "retries_exhausted": "retries exhausted",
}
_POLICY_ENTRY = re.compile(r"[a-z][a-z0-9_-]{0,31}(:[0-9]{1,12})?")


def all_triggers() -> list[str]:
    return list(FAILOVER_TRIGGERS)


class BackendPolicy(models.Model):
    """An ordered fail-over policy (downloads/failover.py): a user's own, or a plan's default for its users
    (the user's own wins; an own policy with no backends turns fail-over off for that user).

    Entries are backend names ("seedr", "server:12") or a kind standing for each of the user's own accounts
    of it ("server": their enabled servers in turn)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="backend_policy")
    plan = models.OneToOneField("billing.Plan", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="backend_policy", help_text="The default of this plan's users.")
    backends = models.JSONField(default=list, blank=True, help_text='In order, e.g. ["seedr", "server", "engine"].')
    triggers = models.JSONField(default=all_triggers, blank=True,
                                help_text=f"Some of: {', '.join(FAILOVER_TRIGGERS)}.")
    stall_minutes = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="Minutes with no seeder and no new byte before a job counts as stalled.")
    offline_grace_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="Minutes a backend may be offline before its jobs move on.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "backend policies"
        constraints = [models.CheckConstraint(
            condition=models.Q(user__isnull=True, plan__isnull=False) | models.Q(user__isnull=False, plan__isnull=True),
            name="backendpolicy_user_or_plan")]

    def __str__(self) -> str:
        return " → ".join(self.backends) or "no fail-over"

    def clean(self) -> None:
        """The shape (the services check, per user, that each backend is one they may use)."""
        errors = {}
        if (self.user_id is None) == (self.plan_id is None):
            errors["plan"] = "A policy belongs to one user or to one plan."
        if not isinstance(self.backends, list) or not all(
                isinstance(n, str) and _POLICY_ENTRY.fullmatch(n) for n in self.backends) or len(self.backends) == 1:
            errors["backends"] = 'None, or at least two backend names in order, e.g. ["seedr", "engine"].'
        elif len(set(self.backends)) != len(self.backends):
            errors["backends"] = "A backend may appear only once."
        elif self.plan_id and (outside := [n for n in self.backends if not self.plan.allows_backend(n)]):
            errors["backends"] = f"Not among the plan's backends: {', '.join(outside)}."
        if not isinstance(self.triggers, list) or not self.triggers or not set(self.triggers) <= set(FAILOVER_TRIGGERS):
            errors["triggers"] = f"Some of: {', '.join(FAILOVER_TRIGGERS)}."
        if errors:
            raise ValidationError(errors)


class JobFile(models.Model):
    """One file of a job, at a path relative to the job's folder."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024)
    size_bytes = models.PositiveBigIntegerField(default=0)
    completed_bytes = models.PositiveBigIntegerField(default=0)
    mime_type = models.CharField(max_length=128, blank=True)
    index = models.PositiveIntegerField(default=0, help_text="The file's index inside the torrent.")

    class Meta:
        ordering = ["job", "path"]
        constraints = [models.UniqueConstraint(fields=["job", "path"], name="jobfile_unique_path")]

    def __str__(self) -> str:
        return self.path

    @property
    def is_complete(self) -> bool:
        return self.completed_bytes >= self.size_bytes


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    STATUS = "status", "Status change"
    PROGRESS = "progress", "Progress"
    FILES = "files", "Files"
    MESSAGE = "message", "Message"
    DELETED = "deleted", "Deleted"


class JobEventQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def update(self, **kwargs):
        raise TypeError("Job events are append-only.")


class JobEvent(models.Model):
    """Append-only history of a job, and the outbox the web process relays to websockets (by id)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # No FK constraint: the history (and the "deleted" event) outlives the job row.
    job = models.ForeignKey(
        Job, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="events"
    )
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    code = models.CharField(max_length=64, blank=True, help_text="Machine code, e.g. the new status.")
    data = models.JSONField(default=dict, blank=True)

    objects = JobEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "id"]), models.Index(fields=["job", "id"])]

    def __str__(self) -> str:
        return f"#{self.pk} job {self.job_id} {self.kind} {self.code}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Job events are append-only.")
        super().save(*args, **kwargs)

    def as_message(self) -> EventMessage:
        """The typed payload sent to websocket clients (see downloads/events.py)."""
        return {
            "id": self.pk,
            "ts": self.created_at.isoformat(),
            "job": self.job_id,
            "kind": self.kind,
            "code": self.code,
            "data": self.data,
        }


class BlockedInfoHash(models.Model):
    """An info-hash nobody may download. Found by its HMAC; the hash itself is stored encrypted."""

    info_hash = EncryptedCharField(max_length=64)
    info_hash_hmac = models.CharField(max_length=64, unique=True, editable=False)
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name = "blocked info-hash"

    def __str__(self) -> str:
        return f"blocked #{self.pk}"


class ProcessHeartbeat(models.Model):
    """Liveness of a worker, engine or web (event relay) process, shown on the admin health page."""

    class Kind(models.TextChoices):
        WEB = "web", "Web"
        WORKER = "worker", "Worker"
        ENGINE = "engine", "Engine"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200, unique=True, help_text="host:pid")
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    info = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name


class Lease(models.Model):
    """A named, expiring claim that one process holds at a time (the remote poller chain, a transfer).

    Claimed and renewed by conditional UPDATEs (downloads/leases.py), so it works the same on SQLite and
    PostgreSQL and a holder that dies simply lets it expire.
    """

    name = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} → {self.holder or '-'}"


# The qBittorrent Web API's models live in their own package but belong to this app (registered on import).
from downloads.qbittorrent_api.models import QbtCategory, QbtSession, QbtTag, QbtTorrent  # noqa: E402, F401


class PreloadItem(models.Model):
    """One of a user's jobs on screen, in the preload queue (streaming/preload.py): the worker asks the engine
    holding it for the head and tail pieces of its primary file, the highest priority first, at most
    MAX_PRELOAD_CONCURRENCY at once. A row is the queue's shared state across web processes and workers (no
    Redis needed); a new viewport replaces the user's rows, and rows that left it are cancelled, then deleted."""

    class State(models.TextChoices):
        WANTED = "wanted"
        RUNNING = "running"
        DONE = "done"
        CANCELLED = "cancelled"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    priority = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=12, choices=State.choices, default=State.WANTED)
    path = models.CharField(max_length=1024, blank=True, help_text="The primary file asked for (engine path).")
    engine = models.CharField(max_length=128, blank=True, help_text="The engine asked, to cancel it there.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "job"], name="preload_one_per_job")]
        indexes = [models.Index(fields=["state", "-priority", "-updated_at"])]

    def __str__(self) -> str:
        return f"preload {self.job_id} ({self.state}, {self.priority})"
