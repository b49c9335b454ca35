"""/api/v1/shares/: the user's share links — list (optionally of one job), create, revoke. Thin: streaming/shares.py
decides. The link itself (`url`) is shown to its owner only, and only while it can still be used."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed
from streaming import shares
from streaming.models import Share


class ShareSerializer(serializers.ModelSerializer):
    file = serializers.IntegerField(source="jobfile_id", read_only=True, allow_null=True)
    file_path = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Share
        fields = ["id", "job", "file", "file_path", "state", "url", "created_at", "expires_at", "max_downloads",
                  "download_count", "bytes_sent", "revoked_at"]
        read_only_fields = fields

    def get_file_path(self, share: Share) -> str | None:
        return share.jobfile.path if share.jobfile_id else None

    def get_state(self, share: Share) -> str:
        return share.state()

    def get_url(self, share: Share) -> str | None:
        if share.state() != Share.State.ACTIVE:
            return None
        return self.context["request"].build_absolute_uri(shares.share_url(share))


class ShareCreateSerializer(serializers.Serializer):
    job = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    file = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    max_downloads = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, allow_null=True)


class ShareListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("job", int, required=False)], responses=ShareSerializer(many=True))
    def get(self, request) -> Response:
        job = request.query_params.get("job")
        if job is not None and not (job.isascii() and job.isdigit() and len(job) < 19):
            raise ValidationFailed("`job` must be a job id.")
        rows = shares.list_shares(request.user, job_id=int(job) if job is not None else None)
        return Response(ShareSerializer(rows, many=True, context={"request": request}).data)

    @extend_schema(request=ShareCreateSerializer, responses={201: ShareSerializer})
    def post(self, request) -> Response:
        given = ShareCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        share = shares.create_share(request.user, job_id=data["job"], file_id=data.get("file"),
                                    expires_at=data.get("expires_at"), max_downloads=data.get("max_downloads"))
        return Response(ShareSerializer(share, context={"request": request}).data, status=status.HTTP_201_CREATED)


class ShareRevokeView(APIView):
    @extend_schema(request=None, responses=ShareSerializer)
    def post(self, request, pk: int) -> Response:
        share = shares.revoke_share(request.user, pk)
        return Response(ShareSerializer(share, context={"request": request}).data)
