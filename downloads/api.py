"""REST API for jobs and batches. Views parse input, call one service, render the result."""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed
from config.params import id_param
from downloads import failover, files, health, services
from downloads.models import BackendPolicy, Batch, Job, Status
from downloads.serializers import (
    BatchCreateSerializer,
    BatchSerializer,
    CancelSerializer,
    FailoverPolicySerializer,
    JobCreateSerializer,
    JobDetailSerializer,
    JobSerializer,
)


def _date_param(request, name: str):
    raw = request.query_params.get(name)
    if not raw:
        return None
    value = parse_datetime(raw) or parse_date(raw)
    if value is None:
        raise ValidationFailed(f"'{name}' must be an ISO date or date-time.", code="invalid_filter")
    return value


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Job.objects.none()  # typing for the schema; get_queryset() scopes to the user
    lookup_value_regex = r"[0-9]+"
    serializer_class = JobSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        jobs = Job.objects.for_user(self.request.user)
        if self.action == "retrieve":
            return jobs.prefetch_related("files")
        if self.action == "list":
            return jobs.defer("info_hash", "magnet", "torrent")  # never shown; decrypting them costs per row
        return jobs

    def filter_queryset(self, queryset):
        params = self.request.query_params
        if self.action != "list":
            return queryset
        if status_filter := params.get("status"):
            wanted = status_filter.split(",")
            if not set(wanted) <= set(Status.values):
                raise ValidationFailed(f"Unknown status in '{status_filter[:60]}'.", code="invalid_filter")
            queryset = queryset.filter(status__in=wanted)
        if backend := params.get("backend"):
            queryset = queryset.filter(backend=backend)
        if (batch := id_param(params, "batch")) is not None:
            queryset = queryset.filter(batch_id=batch)
        if after := _date_param(self.request, "created_after"):
            queryset = queryset.filter(created_at__gte=after) if hasattr(after, "hour") else queryset.filter(
                created_at__date__gte=after)
        if before := _date_param(self.request, "created_before"):
            queryset = queryset.filter(created_at__lt=before) if hasattr(before, "hour") else queryset.filter(
                created_at__date__lte=before)
        return queryset

    def get_serializer_class(self):
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="Comma-separated statuses."),
            OpenApiParameter("backend", str),
            OpenApiParameter("batch", int),
            OpenApiParameter("created_after", str, description="ISO date or date-time."),
            OpenApiParameter("created_before", str, description="ISO date or date-time."),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def create(self, request):
        form = JobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if data.get("magnet"):
            job = services.add_magnet(request.user, data["magnet"], backend=data.get("backend"))
        elif data.get("url"):
            job = services.add_url(request.user, data["url"], backend=data.get("backend"))
        else:
            job = services.add_torrent(request.user, data["torrent"].read(), backend=data.get("backend"))
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.delete_job(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return Response(JobSerializer(services.pause_job(request.user, self.get_object())).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return Response(JobSerializer(services.resume_job(request.user, self.get_object())).data)

    @extend_schema(request=CancelSerializer, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        form = CancelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = services.cancel_job(request.user, self.get_object(), delete_data=form.validated_data["delete_data"])
        return Response(JobSerializer(job).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return Response(JobSerializer(services.retry_job(request.user, self.get_object())).data)


class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Batch.objects.none()
    lookup_value_regex = r"[0-9]+"
    serializer_class = BatchSerializer

    def get_queryset(self):
        return Batch.objects.filter(user=self.request.user).prefetch_related(
            Prefetch("jobs", queryset=Job.objects.only("id", "batch_id", "status"))
        )

    @extend_schema(request=BatchCreateSerializer, responses={201: BatchSerializer})
    def create(self, request):
        form = BatchCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        result = services.add_batch(request.user, data["magnets"], backend=data.get("backend"),
                                    name=data.get("name", ""))
        if result.batch is None:
            raise ValidationFailed("No line of the batch is a valid magnet link.", code="batch_invalid",
                                   errors=result.errors)
        body = {
            "batch": BatchSerializer(Batch.objects.prefetch_related("jobs").get(pk=result.batch.pk)).data,
            "jobs": JobSerializer(result.jobs, many=True).data,
            "errors": result.errors,
        }
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([IsAdminUser])
def health_snapshot(request):
    """Admins only: the health page's figures, for monitors holding an admin's API key."""
    return Response(health.snapshot())


class FileView(APIView):
    """DELETE /api/v1/files/{id}/: delete one file of one of your stopped jobs (downloads/files.py).
    Another user's file is a 404; a file of a running or seeding job is a 409 `job_running`."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        files.delete_file(request.user, files.owned_file(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FailoverPolicyView(APIView):
    """The signed-in user's backend fail-over policy: GET what applies (theirs, else their plan's), PUT their
    own (validated: backends they may use, no duplicates), DELETE it (204; their plan's applies again)."""

    serializer_class = FailoverPolicySerializer

    def _render(self, request) -> Response:
        source, row = failover.effective_policy(request.user)
        row = row or BackendPolicy()  # none applies: the defaults a new policy starts from, with no backends
        values = {key: getattr(row, key) for key in failover.POLICY_FIELDS}
        return Response(FailoverPolicySerializer({"source": source, **values}).data)

    def get(self, request):
        return self._render(request)

    def put(self, request):
        serializer = FailoverPolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        failover.set_user_policy(request.user, **serializer.validated_data)
        return self._render(request)

    def delete(self, request):
        failover.clear_user_policy(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
