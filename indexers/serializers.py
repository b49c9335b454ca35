"""Shapes of Flotilla's own indexers and search API. Credentials are write-only: a response says which are set
(`credential_names`), never their values; a result never carries its upstream download link or magnet."""

from __future__ import annotations

from rest_framework import serializers

from config.params import MAX_ID
from indexers.models import Indexer, Kind, Privacy, SearchResult

SECRET = serializers.CharField(max_length=2000, allow_blank=True, trim_whitespace=True)


class IndexerSerializer(serializers.ModelSerializer):
    credentials = serializers.DictField(
        child=SECRET, write_only=True, required=False,
        help_text='Write-only, e.g. {"mam_id": "…"} (MyAnonamouse) or {"apikey": "…"} (Torznab). Blank or '
                  "absent on update: keep the stored ones.")
    credential_names = serializers.SerializerMethodField()
    kind = serializers.ChoiceField(choices=Kind.choices)
    privacy = serializers.ChoiceField(choices=Privacy.choices, required=False)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    categories = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=999_999), required=False,
                                       max_length=200)
    shared = serializers.BooleanField(read_only=True)
    owner = serializers.EmailField(source="owner.email", read_only=True, default=None)
    health = serializers.SerializerMethodField()
    in_backoff = serializers.SerializerMethodField()

    class Meta:
        model = Indexer
        fields = ["id", "name", "kind", "url", "credentials", "credential_names", "enabled", "priority", "categories",
                  "timeout", "request_interval", "privacy", "shared", "owner", "avg_response_ms", "success_rate",
                  "consecutive_failures", "last_error", "last_error_code", "last_success_at", "last_failure_at",
                  "backoff_until", "in_backoff", "health", "account_status", "caps", "caps_at", "created_at"]
        read_only_fields = ["id", "shared", "owner", "avg_response_ms", "success_rate", "consecutive_failures",
                            "last_error", "last_error_code", "last_success_at", "last_failure_at", "backoff_until",
                            "account_status", "caps", "caps_at", "created_at"]
        validators: list = []

    def get_credential_names(self, indexer: Indexer) -> list[str]:
        return sorted(indexer.secrets)

    def get_health(self, indexer: Indexer) -> str:
        from indexers.services import health_message

        return health_message(indexer)

    def get_in_backoff(self, indexer: Indexer) -> bool:
        return indexer.in_backoff()


class TestReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    capabilities = serializers.DictField()
    account = serializers.DictField()
    code = serializers.CharField()
    detail = serializers.CharField()


class SearchResultSerializer(serializers.ModelSerializer):
    indexer_name = serializers.CharField(source="indexer.name")
    age_days = serializers.SerializerMethodField()
    has_magnet = serializers.SerializerMethodField()

    class Meta:
        model = SearchResult
        fields = ["id", "indexer", "indexer_name", "title", "guid", "size", "seeders", "leechers", "grabs", "files",
                  "published_at", "age_days", "categories", "flags", "info_url", "quality", "extra", "score",
                  "has_magnet", "expires_at"]

    def get_age_days(self, result: SearchResult) -> float | None:
        from django.utils import timezone

        if not result.published_at:
            return None
        return round((timezone.now() - result.published_at).total_seconds() / 86400, 1)

    def get_has_magnet(self, result: SearchResult) -> bool:
        return bool(result.magnet)


class SearchErrorSerializer(serializers.Serializer):
    indexer = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField()
    detail = serializers.CharField()


class SearchTimingSerializer(serializers.Serializer):
    indexer = serializers.IntegerField()
    name = serializers.CharField()
    ms = serializers.FloatField()
    count = serializers.IntegerField()


class SearchOutcomeSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True)
    errors = SearchErrorSerializer(many=True)
    timings = SearchTimingSerializer(many=True)


class SearchParamsSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=500, default="",
                              help_text="Free text; Prowlarr tokens such as {author:…}{title:…} are understood.")
    kind = serializers.ChoiceField(choices=["search", "tvsearch", "movie", "music", "book"], default="search")
    indexer_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
                                        required=False, max_length=100)
    categories = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=999_999),
                                       required=False, max_length=100)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=100_000, default=0)
    min_seeders = serializers.IntegerField(min_value=0, max_value=10**9, default=0)
    min_size = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    max_size = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    freeleech = serializers.BooleanField(default=False)
    quality = serializers.ListField(child=serializers.CharField(max_length=20), required=False, max_length=20)
    published_after = serializers.DateTimeField(required=False)
    published_before = serializers.DateTimeField(required=False)


class GrabSerializer(serializers.Serializer):
    backend = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                    help_text="engine, seedr, server:<id> (default: DEFAULT_BACKEND).")
