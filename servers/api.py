"""REST API for the user's torrent servers and the aggregated torrents view. Views parse input, call one
service, render the result."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from config.openapi import AutoSchema
from config.params import id_param
from downloads.serializers import JobSerializer
from servers import services
from servers.models import TorrentServer
from servers.serializers import (
    ServerChoiceSerializer,
    ServerSerializer,
    TorrentAddSerializer,
    TorrentDeleteSerializer,
    TorrentListSerializer,
    TorrentSerializer,
)

HASH = r"[0-9a-fA-F]{40}"
SERVER_ID = OpenApiParameter("server_id", int, description="Only this server (default: every enabled one).")


class ServerViewSet(viewsets.ModelViewSet):
    """Your torrent servers. Passwords are write-only; `test` connects now and updates the status."""

    queryset = TorrentServer.objects.none()
    serializer_class = ServerSerializer
    lookup_value_regex = r"[0-9]+"
    pagination_class = None  # a handful per user

    def get_queryset(self):
        return TorrentServer.objects.for_user(self.request.user).select_related("owner")

    def perform_create(self, serializer):
        serializer.instance = services.create_server(self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_server(self.request.user, serializer.instance,
                                                     **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_server(self.request.user, instance)

    @extend_schema(request=None, responses=ServerSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        return Response(ServerSerializer(services.test_server(request.user, self.get_object())).data)


def _server_id(request: Request) -> int | None:
    return id_param(request.query_params, "server_id")


class _ListingSchema(AutoSchema):
    """`list` answers one object ({results, errors}), not an array of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False if getattr(self.view, "action", None) == "list" else super()._is_list_view(serializer)


class TorrentViewSet(viewsets.ViewSet):
    """Torrents on all your servers at once. A torrent is named by its info-hash; the server holding it is found
    by itself (or named with `server_id`)."""

    schema = _ListingSchema()
    lookup_field = "info_hash"
    lookup_value_regex = HASH
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(parameters=[SERVER_ID], responses=TorrentListSerializer, operation_id="v1_torrents_list")
    def list(self, request):
        """Every torrent of your enabled servers, asked concurrently; a server that fails is in `errors`."""
        listing = services.list_torrents(request.user, _server_id(request))
        return Response({"results": listing.results, "errors": listing.errors})

    @extend_schema(request=TorrentAddSerializer, responses={201: JobSerializer})
    def create(self, request):
        """Add a torrent to one of your servers (a Flotilla job): a magnet, a URL Flotilla fetches, or a file."""
        form = TorrentAddSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        job = services.add_to_server(request.user, data["server_id"], magnet=data.get("magnet", ""),
                                     url=data.get("url", ""),
                                     torrent=data["torrent"].read() if data.get("torrent") else b"")
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[SERVER_ID], responses=TorrentSerializer)
    def retrieve(self, request, info_hash=None):
        return Response(services.torrent_detail(request.user, info_hash, _server_id(request)))

    @extend_schema(parameters=[SERVER_ID, OpenApiParameter("delete_data", bool)], responses={204: None})
    def destroy(self, request, info_hash=None):
        delete_data = request.query_params.get("delete_data", "").lower() in ("1", "true", "yes")
        services.torrent_action(request.user, info_hash, "delete", server_id=_server_id(request),
                                delete_data=delete_data)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _act(self, request, info_hash: str, name: str):
        form = ServerChoiceSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        server_id = form.validated_data.get("server_id") or _server_id(request)
        return Response(services.torrent_action(request.user, info_hash, name, server_id=server_id))

    @extend_schema(request=ServerChoiceSerializer, responses=TorrentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, info_hash=None):
        return self._act(request, info_hash, "start")

    @extend_schema(request=ServerChoiceSerializer, responses=TorrentSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, info_hash=None):
        return self._act(request, info_hash, "stop")

    # Not named `delete`: DRF dispatches an HTTP DELETE to a method of that name on every route of the viewset
    # (DELETE …/stop/ removed the torrent), and OPTIONS advertised DELETE everywhere.
    @extend_schema(request=TorrentDeleteSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="delete", url_name="delete")
    def delete_torrent(self, request, info_hash=None):
        form = TorrentDeleteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        services.torrent_action(request.user, info_hash, "delete", server_id=data.get("server_id"),
                                delete_data=data["delete_data"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ServerChoiceSerializer, responses={201: JobSerializer})
    @action(detail=True, methods=["post"])
    def adopt(self, request, info_hash=None):
        """Make a torrent Flotilla did not add (external) one of your jobs."""
        form = ServerChoiceSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = services.adopt(request.user, info_hash, form.validated_data.get("server_id"))
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)
