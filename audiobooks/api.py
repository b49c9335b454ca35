"""REST API of audiobooks: /api/v1/audiobooks/ (your books, mark a job as a book, retry a failed one) and
/api/v1/audiobooks/settings/ (library folder, Audiobookshelf server). Views parse input, call one service,
render the result."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from audiobooks import services
from audiobooks.compliance import status as tracker_status
from audiobooks.models import AudiobookJob
from audiobooks.serializers import (
    AudiobookSerializer,
    MarkSerializer,
    SettingsSerializer,
    TrackerStatusSerializer,
)


class AudiobookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your audiobooks: each is one of your jobs plus the book's metadata, with its processing state (step
    n/N), the failure reason, and where it was published."""

    queryset = AudiobookJob.objects.none()
    serializer_class = AudiobookSerializer
    # 18 digits always fit a bigint: a longer id is an unknown route (404), never an overflow in the query.
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        return tracker_status.books_of(self.request.user)

    @extend_schema(request=MarkSerializer, responses={201: AudiobookSerializer})
    def create(self, request):
        """Mark one of your jobs as an audiobook: made when its download finishes (now, if it already did)."""
        form = MarkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        book = services.mark_job(request.user, data.pop("job"), **data)
        return Response(AudiobookSerializer(book).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=AudiobookSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Make a failed book again from the download's files."""
        return Response(AudiobookSerializer(services.retry(request.user, self.get_object())).data)


class SettingsView(GenericAPIView):
    """Your library folder and Audiobookshelf server (the token is write-only: `has_abs_token`)."""

    serializer_class = SettingsSerializer

    def get_object(self):  # also what DRF's OPTIONS metadata asks for a PUT
        return services.get_settings(self.request.user)

    def get(self, request):
        return Response(SettingsSerializer(self.get_object()).data)

    def put(self, request):
        form = SettingsSerializer(self.get_object(), data=request.data)
        form.is_valid(raise_exception=True)
        return Response(SettingsSerializer(services.update_settings(request.user, **form.validated_data)).data)


class TrackerStatusView(GenericAPIView):
    """Your private-tracker accounts (per indexer of yours: ratio, class, unsatisfied n / limit, session ok /
    expired / unknown, when the compliance sweep last read it) and your open tracker alerts."""

    serializer_class = TrackerStatusSerializer

    def get(self, request):
        return Response(TrackerStatusSerializer(tracker_status.tracker_status(request.user)).data)
