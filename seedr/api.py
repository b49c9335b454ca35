"""REST API under /api/v1/seedr/: connect (device code first, password fallback), the Seedr queue and the
account. Views parse input, call one service, render the result."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from config.errors import ValidationFailed
from downloads.serializers import BatchSerializer, JobSerializer
from seedr import services
from seedr.models import SeedrDeviceLogin
from seedr.serializers import (
    AddSerializer,
    AutoStartSerializer,
    BatchAddSerializer,
    DeviceLoginSerializer,
    PasswordLoginSerializer,
    QueueItemSerializer,
    RequiredSelectionSerializer,
    SeedrCancelSerializer,
    SelectionSerializer,
)


def _valid(serializer_class, request: Request):
    services.check_enabled()
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return form


def _device(login: SeedrDeviceLogin) -> dict:
    return DeviceLoginSerializer({"state": "pending", "user_code": login.user_code,
                                  "verification_url": login.verification_url, "interval": login.interval,
                                  "expires_at": login.expires_at}).data


def _account(user) -> dict:
    return services.account_state(services.account_of(user))


@extend_schema(request=None, responses={201: DeviceLoginSerializer})
@api_view(["POST"])
def device_start(request):
    """Start a device-code login: show `user_code` and `verification_url` to the user, then poll."""
    services.check_enabled()
    return Response(_device(services.start_device_login(request.user)), status=status.HTTP_201_CREATED)


@extend_schema(request=None, responses={200: dict})
@api_view(["POST"])
def device_poll(request):
    """Poll the device login (at most every `interval` s); `state` becomes "connected" once approved."""
    services.check_enabled()
    result = services.poll_device_login(request.user)
    if isinstance(result, SeedrDeviceLogin):
        return Response(_device(result))
    return Response({"state": "connected", "account": services.account_state(result)})


@extend_schema(request=PasswordLoginSerializer, responses={200: dict})
@api_view(["POST"])
def login(request):
    """Fallback login with the Seedr email and password (sent to Seedr once, never stored)."""
    data = _valid(PasswordLoginSerializer, request).validated_data
    account = services.password_login(request.user, data["username"], data["password"])
    return Response({"state": "connected", "account": services.account_state(account)})


@extend_schema(request=None, responses={200: dict})
@api_view(["POST"])
def logout(request):
    """Disconnect Seedr: the tokens are forgotten; Seedr jobs wait for a new login."""
    services.check_enabled()
    return Response({"account": services.account_state(services.disconnect(request.user))})


@extend_schema(request=AddSerializer, responses={201: JobSerializer})
@api_view(["POST"])
@parser_classes([JSONParser, MultiPartParser, FormParser])
def add(request):
    data = _valid(AddSerializer, request).validated_data
    torrent = data["torrent"].read() if data.get("torrent") else b""
    job = services.add(request.user, magnet=data.get("magnet", ""), torrent=torrent)
    return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


@extend_schema(request=BatchAddSerializer, responses={201: dict})
@api_view(["POST"])
def batch_add(request):
    """Multiline magnets → one batch of Seedr jobs, run in order (held until `start` without auto-start)."""
    data = _valid(BatchAddSerializer, request).validated_data
    result = services.add_batch(request.user, data["magnets"], name=data.get("name", ""),
                                auto_start=data.get("auto_start"))
    if result.batch is None:
        raise ValidationFailed("No line of the batch is a valid magnet link.", code="batch_invalid",
                               errors=result.errors)
    return Response({"batch": BatchSerializer(result.batch).data,
                     "jobs": JobSerializer(result.jobs, many=True).data, "errors": result.errors},
                    status=status.HTTP_201_CREATED)


@extend_schema(request=SeedrCancelSerializer, responses={200: dict})
@api_view(["POST"])
def cancel(request):
    form = _valid(SeedrCancelSerializer, request)
    cancelled = services.cancel(request.user, **form.selection(), delete_data=form.validated_data["delete_data"])
    return Response({"jobs": JobSerializer(cancelled, many=True).data})


@extend_schema(request=SelectionSerializer, responses={200: dict})
@api_view(["POST"])
def clear(request):
    """Hide finished items from the Seedr queue (all finished ones when nothing is named)."""
    form = _valid(SelectionSerializer, request)
    return Response({"cleared": services.clear(request.user, **form.selection())})


@extend_schema(request=SelectionSerializer, responses={200: dict})
@api_view(["POST"])
def start(request):
    """Start held items (all held ones when nothing is named)."""
    form = _valid(SelectionSerializer, request)
    return Response({"jobs": JobSerializer(services.start(request.user, **form.selection()), many=True).data})


@extend_schema(request=RequiredSelectionSerializer, responses={200: dict})
@api_view(["POST"])
def retry(request):
    form = _valid(RequiredSelectionSerializer, request)
    return Response({"jobs": JobSerializer(services.retry(request.user, **form.selection()), many=True).data})


@extend_schema(request=AutoStartSerializer, responses={200: dict})
@api_view(["POST"])
def auto_start(request):
    data = _valid(AutoStartSerializer, request).validated_data
    return Response({"account": services.account_state(services.set_auto_start(request.user, data["enabled"]))})


@extend_schema(responses={200: dict})
@api_view(["GET"])
def queue_status(request):
    """The Seedr queue (unfinished items, in order), recent finished ones, batch summaries, quota left."""
    services.check_enabled()
    snapshot = services.queue_status(request.user)
    return Response({
        "account": snapshot["account"], "quota": snapshot["quota"], "batches": snapshot["batches"],
        "queue": QueueItemSerializer(snapshot["queue"], many=True).data,
        "done": QueueItemSerializer(snapshot["done"], many=True).data,
    })


@extend_schema(responses={200: dict})
@api_view(["GET"])
def account(request):
    """The connection and the cached account insights (space, bandwidth, tier, settings, devices)."""
    services.check_enabled()
    seedr_account = services.account_of(request.user)
    return Response({**services.account_state(seedr_account), "insights": seedr_account.insights,
                     "insights_at": seedr_account.insights_at})


@extend_schema(request=None, responses={200: dict})
@api_view(["POST"])
def account_refresh(request):
    """Refresh the insights from Seedr now."""
    services.check_enabled()
    seedr_account = services.account_of(request.user)
    insights = services.refresh_insights_now(seedr_account)
    return Response({**services.account_state(seedr_account), "insights": insights,
                     "insights_at": seedr_account.insights_at})
