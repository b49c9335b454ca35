from dataclasses import asdict

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from billing.services import usage_summary

_UsageSchema = inline_serializer(
    "Usage",
    {
        "plan": serializers.CharField(),
        "storage_used": serializers.IntegerField(),
        "storage_limit": serializers.IntegerField(help_text="0 = unlimited"),
        "storage_percent": serializers.FloatField(),
        "transfer_this_month": serializers.IntegerField(),
        "transfer_limit": serializers.IntegerField(help_text="0 = unlimited"),
        "transfer_percent": serializers.FloatField(),
        "active_jobs": serializers.IntegerField(),
        "active_jobs_limit": serializers.IntegerField(help_text="0 = unlimited"),
        "max_job_size": serializers.IntegerField(),
        "retention_days": serializers.IntegerField(),
        "allowed_backends": serializers.ListField(child=serializers.CharField()),
    },
)


@extend_schema(responses=_UsageSchema)
@api_view(["GET"])
def usage(request):
    """The signed-in user's plan, limits and current usage."""
    summary = usage_summary(request.user)
    return Response(
        {**asdict(summary), "storage_percent": summary.storage_percent, "transfer_percent": summary.transfer_percent}
    )
