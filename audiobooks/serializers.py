"""Shapes of the audiobooks API. Serializers check shape only; audiobooks.services enforces the rules
(ownership, states, the library folder staying inside the operator's root). The Audiobookshelf token is
write-only: no response carries it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audiobooks.compliance import status as tracker_status
from audiobooks.models import AudiobookJob, AudiobookSettings
from config.params import MAX_ID

# Each step's share of a book's progress bar: decoding and encoding every file is nearly all the time.
STEP_SPANS = {"checking": (0.0, 0.1), "merging": (0.1, 0.9), "tagging": (0.9, 0.95), "publishing": (0.95, 1.0)}


def _names() -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=300), max_length=20, required=False)


class TrackerStateSerializer(serializers.Serializer):
    tracker = serializers.CharField()
    tracker_name = serializers.CharField()
    seeded_seconds = serializers.IntegerField()
    needed_seconds = serializers.IntegerField()
    window_ends_at = serializers.DateTimeField(allow_null=True)
    ratio = serializers.FloatField(allow_null=True)
    clock_satisfied_at = serializers.DateTimeField(allow_null=True)
    tracker_satisfied_at = serializers.DateTimeField(allow_null=True)
    satisfied = serializers.BooleanField()
    hit_and_run = serializers.BooleanField()
    inactive = serializers.BooleanField()
    released_at = serializers.DateTimeField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)


class TrackerAlertSerializer(serializers.Serializer):
    """An open alert: session_expired, ratio_near_floor, unsatisfied_near_limit or inactive_unsatisfied."""

    id = serializers.IntegerField(source="pk")
    kind = serializers.CharField()
    label = serializers.CharField(source="get_kind_display")
    message = serializers.CharField()
    job = serializers.IntegerField(source="job_id", allow_null=True)
    indexer = serializers.IntegerField(source="indexer_id", allow_null=True)
    raised_at = serializers.DateTimeField()


class AudiobookSerializer(serializers.ModelSerializer):
    """A book: the request's metadata, where processing is (step n/N), and where it was published."""

    job = serializers.IntegerField(source="job_id", read_only=True)
    job_name = serializers.CharField(source="job.name", read_only=True)
    job_status = serializers.CharField(source="job.status", read_only=True, help_text="The download's status.")
    state = serializers.CharField(read_only=True, help_text="waiting, processing, published or failed")
    published_path = serializers.SerializerMethodField(
        help_text="The book's folder relative to the operator's library root (AUDIOBOOK_LIBRARY_ROOT).")
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)
    authors = serializers.ListField(child=serializers.CharField(), read_only=True)
    narrators = serializers.ListField(child=serializers.CharField(), read_only=True)
    cover_url = serializers.CharField(read_only=True)  # "" when none: a plain string, not a `uri`
    progress = serializers.SerializerMethodField(help_text="0 to 1 across the steps (merging weighs most).")
    tracker = serializers.SerializerMethodField(
        help_text="Private-tracker seeding state (null: no tracker rules govern the download): seeded_seconds / "
                  "needed_seconds within window_ends_at, the torrent's ratio if its client reports one, "
                  "clock_satisfied_at (Flotilla's clock), tracker_satisfied_at (the tracker's list), satisfied "
                  "(both), hit_and_run, inactive.")
    alerts = serializers.SerializerMethodField(help_text="Open tracker alerts of the download.")

    class Meta:
        model = AudiobookJob
        fields = ["id", "job", "job_name", "job_status", "title", "authors", "narrators", "series", "sequence",
                  "year", "genre", "description", "asin", "isbn", "cover_url", "accept_damaged", "keep_both",
                  "state", "step", "step_done", "step_total", "progress", "error_code", "error", "warnings",
                  "published_path", "published_at", "duration_seconds", "chapters", "scan_status", "created_at",
                  "updated_at", "tracker", "alerts"]
        read_only_fields = fields

    def _rules(self) -> dict:
        """The enabled tracker rules, read once per response (cached on the outermost serializer)."""
        root = self.root
        if not hasattr(root, "_tracker_rules"):
            root._tracker_rules = tracker_status.enabled_rules()
        return root._tracker_rules

    @extend_schema_field(TrackerStateSerializer(allow_null=True))
    def get_tracker(self, book: AudiobookJob) -> dict | None:
        state = tracker_status.book_state(book.job, self._rules())
        return TrackerStateSerializer(state).data if state else None

    @extend_schema_field(TrackerAlertSerializer(many=True))
    def get_alerts(self, book: AudiobookJob) -> list[dict]:
        found = getattr(book.job, "open_tracker_alerts", None)
        if found is None:  # not prefetched (a single book)
            found = tracker_status.job_alerts(book.job)
        return TrackerAlertSerializer([a for a in found if a.user_id == book.job.user_id], many=True).data

    def get_progress(self, book: AudiobookJob) -> float:
        if book.state == AudiobookJob.State.PUBLISHED:
            return 1.0
        if book.state != AudiobookJob.State.PROCESSING or book.step not in STEP_SPANS:
            return 0.0
        start, end = STEP_SPANS[book.step]
        within = book.step_done / book.step_total if book.step_total else 0.0
        return round(start + (end - start) * min(within, 1.0), 4)

    def get_published_path(self, book: AudiobookJob) -> str:
        if not book.published_path:
            return ""
        path, root = Path(book.published_path), Path(settings.AUDIOBOOK_LIBRARY_ROOT or "/").resolve()
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


class TrackerAccountSerializer(serializers.Serializer):
    """One of your tracker indexers: what the tracker last said about the account."""

    indexer = serializers.IntegerField()
    name = serializers.CharField()
    tracker_name = serializers.CharField()
    enabled = serializers.BooleanField()
    ratio = serializers.FloatField(allow_null=True)
    ratio_floor = serializers.FloatField()
    # `class` is a Python keyword: declared below.
    unsatisfied = serializers.IntegerField(allow_null=True)
    unsatisfied_limit = serializers.IntegerField(allow_null=True)
    session = serializers.ChoiceField(choices=["ok", "expired", "unknown"])
    checked_at = serializers.DateTimeField(allow_null=True, help_text="The compliance sweep's last account read.")


TrackerAccountSerializer._declared_fields["class"] = serializers.CharField(help_text="The account's class.")


class TrackerStatusSerializer(serializers.Serializer):
    accounts = TrackerAccountSerializer(many=True)
    alerts = TrackerAlertSerializer(many=True)


class MarkSerializer(serializers.Serializer):
    """Make one of your jobs an audiobook; empty fields are filled from the files' own tags."""

    job = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id of one of your jobs.")
    title = serializers.CharField(max_length=500, required=False, allow_blank=True)
    authors = _names()
    narrators = _names()
    series = serializers.CharField(max_length=300, required=False, allow_blank=True)
    sequence = serializers.RegexField(r"^\d{1,4}(\.\d{1,2})?$", max_length=16, required=False, allow_blank=True,
                                      help_text="Position in the series: 1, 3.5")
    year = serializers.IntegerField(min_value=1000, max_value=9999, required=False, allow_null=True)
    genre = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(max_length=20_000, required=False, allow_blank=True)
    asin = serializers.CharField(max_length=16, required=False, allow_blank=True)
    isbn = serializers.CharField(max_length=20, required=False, allow_blank=True)
    cover_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    accept_damaged = serializers.BooleanField(default=False, help_text="Leave out unreadable files, keep truncated.")
    keep_both = serializers.BooleanField(default=False, help_text='Publish beside an existing book as "… (2)".')


class SettingsSerializer(serializers.ModelSerializer):
    """Your library folder (inside the operator's root) and Audiobookshelf server."""

    library_dir = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                        help_text="Relative to the operator's library root; empty: your user id.")
    abs_url = serializers.URLField(max_length=500, required=False, allow_blank=True,
                                   help_text="Audiobookshelf's address, e.g. http://abs:13378")
    abs_token = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=1000,
                                      style={"input_type": "password"},
                                      help_text="Write-only. Blank or absent: keep the stored one.")
    abs_library_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    has_abs_token = serializers.SerializerMethodField()
    library_path = serializers.SerializerMethodField(help_text="Where your books are published (server path).")
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null: never saved.")

    class Meta:
        model = AudiobookSettings
        fields = ["library_dir", "library_path", "process_grabs", "abs_url", "abs_token", "has_abs_token",
                  "abs_library_id",
                  "updated_at"]

    def get_has_abs_token(self, prefs: AudiobookSettings) -> bool:
        return bool(prefs.abs_token)

    def get_library_path(self, prefs: AudiobookSettings) -> str:
        root = Path(settings.AUDIOBOOK_LIBRARY_ROOT or "")
        return str(root / (prefs.library_dir or str(prefs.user_id))) if settings.AUDIOBOOK_LIBRARY_ROOT else ""
