"""Play without downloading (streaming/ephemeral.py) and the preload queue (streaming/preload.py), over the API:

- `POST /api/v1/stream/play/` {magnet | torrent (multipart) | result}: an ephemeral job, 201 with where to play it;
- `GET /api/v1/stream/play/<job>/`: whether its primary file is known yet (metadata), and the same links;
- `POST /api/v1/jobs/<id>/keep/`: the ephemeral job becomes an ordinary download;
- `POST /api/v1/ui/viewport` {items: [{job, priority}]}: what is on screen, for the preload queue.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from downloads.serializers import JobSerializer
from streaming import ephemeral, preload


class PlaySerializer(serializers.Serializer):
    """Exactly one of `magnet`, `torrent` (multipart file) or `result` (a search result's `id`, as the search API
    returns it)."""

    magnet = serializers.CharField(required=False, trim_whitespace=True, max_length=settings.MAGNET_MAX_LENGTH)
    torrent = serializers.FileField(required=False, allow_empty_file=True)
    result = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def validate(self, attrs):
        if sum(attrs.get(key) not in (None, "") for key in ("magnet", "torrent", "result")) != 1:
            raise serializers.ValidationError("Give exactly one of a magnet link, a .torrent file or a search result.")
        torrent = attrs.get("torrent")
        if torrent is not None and torrent.size > settings.TORRENT_MAX_BYTES:
            raise serializers.ValidationError({"torrent": "The .torrent file is too large."})
        return attrs


class PlayView(APIView):
    @extend_schema(request=PlaySerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request) -> Response:
        """An ephemeral job on the built-in engine, checked like any add; removed after STREAM_IDLE_MINUTES
        with no reader unless kept."""
        form = PlaySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        torrent = data.get("torrent")
        job = ephemeral.play(request.user, magnet=data.get("magnet") or "",
                             torrent=torrent.read() if torrent is not None else b"", result=data.get("result"))
        return Response({**ephemeral.play_links(job), "job": JobSerializer(job).data}, status=status.HTTP_201_CREATED)


class PlayStatusView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, job_id: int) -> Response:
        return Response(ephemeral.play_links(ephemeral.get_job(request.user, job_id)))


class KeepView(APIView):
    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request, job_id: int) -> Response:
        """Keep a "Play without downloading" job as an ordinary download (409 `not_ephemeral` if it is one)."""
        job = ephemeral.keep(request.user, ephemeral.get_job(request.user, job_id))
        return Response(JobSerializer(job).data)


class ViewportItemSerializer(serializers.Serializer):
    job = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    priority = serializers.ChoiceField(choices=list(preload.PRIORITIES))


class ViewportSerializer(serializers.Serializer):
    items = ViewportItemSerializer(many=True, allow_empty=True, max_length=preload.MAX_ITEMS)


class ViewportView(APIView):
    @extend_schema(request=ViewportSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request) -> Response:
        """Replace what the user has on screen; the worker preloads the top items and cancels the rest."""
        form = ViewportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        queued = preload.set_viewport(request.user, [(i["job"], i["priority"]) for i in form.validated_data["items"]])
        return Response({"queued": queued})
