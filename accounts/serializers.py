"""API shapes for the current user and their API keys. The raw key appears only in the create response."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiKey, User


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class NewApiKeySerializer(ApiKeySerializer):
    """The create response: the key itself, this once."""

    key = serializers.SerializerMethodField()

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]

    def get_key(self, obj: ApiKey) -> str:
        return self.context["raw_key"]


class MeSerializer(serializers.ModelSerializer):
    has_accepted_policy = serializers.BooleanField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "role", "email_verified", "has_accepted_policy"]
        read_only_fields = fields
