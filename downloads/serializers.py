"""Shapes of the downloads API. Serializers check shape only; services enforce the rules."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from downloads.models import FAILOVER_TRIGGERS, Batch, Job, JobFile, Status


class JobFileSerializer(serializers.ModelSerializer):
    is_complete = serializers.BooleanField(read_only=True)

    class Meta:
        model = JobFile
        fields = ["id", "path", "size_bytes", "completed_bytes", "mime_type", "is_complete"]


class JobSerializer(serializers.ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    data_deleted = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "name", "status", "status_display", "reason_code", "reason", "backend", "batch", "position",
            "size_bytes", "downloaded_bytes", "uploaded_bytes", "progress", "download_rate", "upload_rate",
            "eta_seconds", "peers", "seeds", "created_at", "started_at", "finished_at", "data_deleted", "ephemeral",
        ]
        read_only_fields = fields

    def get_data_deleted(self, job: Job) -> bool:
        return job.data_deleted_at is not None


class JobDetailSerializer(JobSerializer):
    files = JobFileSerializer(many=True, read_only=True)
    events = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "files", "events"]
        read_only_fields = fields

    def get_events(self, job: Job) -> list[dict]:
        from downloads.services import recent_events

        return [event.as_message() for event in recent_events(job)]


URL_MAX_LENGTH = 4096


def _backend_field():
    return serializers.CharField(required=False, max_length=64, allow_blank=True,
                                 help_text=f'"engine", "seedr" or "server:<id>"; default "{settings.DEFAULT_BACKEND}".')


class JobCreateSerializer(serializers.Serializer):
    """Exactly one of `magnet`, `url` (an http(s) link to a .torrent, fetched by Flotilla; JSON or form) or
    `torrent` (multipart file)."""

    magnet = serializers.CharField(required=False, trim_whitespace=True, max_length=settings.MAGNET_MAX_LENGTH)
    url = serializers.CharField(required=False, trim_whitespace=True, max_length=URL_MAX_LENGTH,
                                help_text="An http(s) link to a .torrent file (or one that redirects to a magnet).")
    torrent = serializers.FileField(required=False, allow_empty_file=True)
    backend = _backend_field()

    def validate(self, attrs):
        if sum(bool(attrs.get(key)) for key in ("magnet", "url", "torrent")) != 1:
            raise serializers.ValidationError("Give exactly one of a magnet link, a link to a .torrent file (url) "
                                              "or a .torrent file.")
        torrent = attrs.get("torrent")
        if torrent is not None and torrent.size > settings.TORRENT_MAX_BYTES:
            raise serializers.ValidationError({"torrent": "The .torrent file is too large."})
        return attrs


class BatchCreateSerializer(serializers.Serializer):
    magnets = serializers.CharField(trim_whitespace=False, max_length=settings.BATCH_MAX_LINES * 8192)
    backend = _backend_field()
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class CancelSerializer(serializers.Serializer):
    delete_data = serializers.BooleanField(default=False)


class BatchSerializer(serializers.ModelSerializer):
    summary = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "name", "backend", "created_at", "summary"]

    def get_summary(self, batch: Batch) -> dict:
        statuses = [job.status for job in batch.jobs.all()]
        return {
            "total": len(statuses),
            "done": statuses.count(Status.COMPLETED),
            "failed": statuses.count(Status.FAILED),
            "cancelled": statuses.count(Status.CANCELLED),
            "remaining": sum(s not in (Status.COMPLETED, Status.FAILED, Status.CANCELLED) for s in statuses),
        }


class FailoverPolicySerializer(serializers.Serializer):
    """The user's fail-over policy; on PUT, keys left out keep their value (see downloads/failover.py)."""

    source = serializers.ChoiceField(choices=["user", "plan", "none"], read_only=True,
                                     help_text="Where the policy that applies comes from.")
    backends = serializers.ListField(child=serializers.CharField(max_length=48), max_length=16, required=False,
                                     help_text='In order, e.g. ["seedr", "server:3", "engine"]; [] turns fail-over '
                                               "off for you.")
    triggers = serializers.ListField(child=serializers.ChoiceField(choices=list(FAILOVER_TRIGGERS)),
                                     required=False)
    stall_minutes = serializers.IntegerField(min_value=1, max_value=10080, required=False)
    offline_grace_minutes = serializers.IntegerField(min_value=1, max_value=10080, required=False)
