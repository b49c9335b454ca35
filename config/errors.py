"""Domain errors and the one DRF exception handler that renders every error as {"code", "detail"}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """An expected refusal with a stable machine code, a human message and an HTTP status."""

    code = "error"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, *, code: str | None = None, http_status: int | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if http_status:
            self.http_status = http_status
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, **self.extra}


class ValidationFailed(DomainError):
    code = "invalid"


class Conflict(DomainError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.Throttled: "throttled",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "parse_error",
}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "detail": "The request is not valid.", "errors": exc.detail}
    else:
        code = _CODES.get(type(exc), getattr(exc, "default_code", "error"))
        response.data = {"code": code, "detail": str(getattr(exc, "detail", exc))}
    return response
