"""Shapes of the Seedr API. Serializers check shape only; seedr.services enforces the rules."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from config.params import MAX_ID
from downloads.models import Job
from downloads.serializers import BatchCreateSerializer, JobCreateSerializer


class PasswordLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254, help_text="The Seedr account's email.")
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class AddSerializer(JobCreateSerializer):
    """A magnet (JSON or form) or a `.torrent` file (multipart) for Seedr; `backend` is ignored."""


class BatchAddSerializer(BatchCreateSerializer):
    auto_start = serializers.BooleanField(required=False, allow_null=True, default=None,
                                          help_text="Start the items on their own (default: the account's toggle).")


class SelectionSerializer(serializers.Serializer):
    """Which Seedr items an action applies to: `ids`, or a whole `batch`."""

    ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                max_length=settings.BATCH_MAX_LINES)
    batch = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    def selection(self) -> dict:
        data = self.validated_data
        return {"ids": data.get("ids"), "batch_id": data.get("batch")}


class RequiredSelectionSerializer(SelectionSerializer):
    def validate(self, attrs):
        if not attrs.get("ids") and not attrs.get("batch"):
            raise serializers.ValidationError("Name the items (`ids`) or a `batch`.")
        return attrs


class SeedrCancelSerializer(RequiredSelectionSerializer):
    delete_data = serializers.BooleanField(default=False)


class AutoStartSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class QueueItemSerializer(serializers.ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    phase = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "name", "status", "status_display", "reason_code", "reason", "batch", "position",
                  "progress", "size_bytes", "downloaded_bytes", "download_rate", "eta_seconds", "seeds", "phase",
                  "created_at", "finished_at"]
        read_only_fields = fields

    def get_phase(self, job: Job) -> str | None:
        task = getattr(job, "seedr", None)
        return task.phase if task is not None else None


class DeviceLoginSerializer(serializers.Serializer):
    state = serializers.CharField()
    user_code = serializers.CharField()
    verification_url = serializers.URLField()
    interval = serializers.IntegerField()
    expires_at = serializers.DateTimeField()
