"""Flotilla's own REST API for indexers and search (`/api/v1/indexers/`, `/api/v1/search/`). Views parse input,
call one service, render the result."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.openapi import AutoSchema
from config.params import MAX_ID
from downloads.serializers import JobSerializer
from indexers import services
from indexers.models import Indexer
from indexers.serializers import (
    GrabSerializer,
    IndexerSerializer,
    SearchOutcomeSerializer,
    SearchParamsSerializer,
    SearchResultSerializer,
    TestReportSerializer,
)


class IndexerViewSet(viewsets.ModelViewSet):
    """Your indexers and the operator's shared ones (read-only here). Credentials are write-only; `test` asks the
    indexer now (capabilities, account, latency) and updates its health."""

    queryset = Indexer.objects.none()
    serializer_class = IndexerSerializer
    lookup_value_regex = r"[0-9]+"
    pagination_class = None

    def get_queryset(self):
        if self.action in ("update", "partial_update", "destroy"):
            return Indexer.objects.owned_by(self.request.user).select_related("owner")
        return Indexer.objects.for_user(self.request.user).select_related("owner")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.create_indexer(self.request.user, credentials=data.pop("credentials", None),
                                                      **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.update_indexer(self.request.user, serializer.instance,
                                                      credentials=data.pop("credentials", None), **data)

    def perform_destroy(self, instance):
        services.delete_indexer(self.request.user, instance)

    @extend_schema(request=None, responses=TestReportSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        report = services.test_indexer(request.user, self.get_object())
        return Response(TestReportSerializer(report).data)


class _OneObject(AutoSchema):
    def _is_list_view(self, serializer=None) -> bool:
        return False if getattr(self.view, "action", None) == "list" else super()._is_list_view(serializer)


LISTS = ("indexer_ids", "categories", "quality")


def _result_id(pk) -> int:
    value = int(pk)
    if value > MAX_ID:
        raise Http404("No such search result.")
    return value


def _ints(request, name: str) -> list[str]:
    """Repeated keys and comma lists alike (`?indexer_ids=1&indexer_ids=2`, `?indexer_ids=1,2`)."""
    return [part for value in request.query_params.getlist(name) for part in value.split(",") if part.strip()]


class SearchViewSet(viewsets.ViewSet):
    """Search all your indexers at once; grab a result into a job."""

    schema = _OneObject()
    lookup_value_regex = r"[0-9]+"

    @extend_schema(parameters=[SearchParamsSerializer], responses=SearchOutcomeSerializer,
                   operation_id="v1_search_list")
    def list(self, request):
        """Results from every indexer that answered in time, ranked, plus one error per indexer that did not."""
        params = {k: v for k, v in request.query_params.items() if k not in LISTS}
        params.update({k: _ints(request, k) for k in LISTS if k in request.query_params})
        form = SearchParamsSerializer(data=params)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        filters = services.Filters(min_seeders=data["min_seeders"], min_size=data["min_size"],
                                   max_size=data["max_size"], freeleech_only=data["freeleech"],
                                   qualities=data.get("quality") or [], published_after=data.get("published_after"),
                                   published_before=data.get("published_before"))
        outcome = services.search(request.user, data["q"], indexer_ids=data.get("indexer_ids") or None,
                                  categories=data.get("categories"), kind=data["kind"], limit=data["limit"],
                                  offset=data["offset"], filters=filters)
        return Response(SearchOutcomeSerializer(outcome).data)

    @extend_schema(responses=SearchResultSerializer, parameters=[OpenApiParameter("id", int, "path")])
    def retrieve(self, request, pk=None):
        return Response(SearchResultSerializer(services.get_result(request.user, _result_id(pk))).data)

    @extend_schema(request=GrabSerializer, responses={201: JobSerializer},
                   parameters=[OpenApiParameter("id", int, "path")])
    @action(detail=True, methods=["post"])
    def grab(self, request, pk=None):
        """Fetch the result's .torrent with the indexer's credentials and run it as a job on `backend`."""
        form = GrabSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = services.grab(request.user, _result_id(pk), form.validated_data.get("backend") or None)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)
