"""Domain errors, the one DRF exception handler that renders every error as {"code", "detail"}, and the
Django-level handlers (config/urls.py handler400/403/404/500) that give the same shape to errors raised
outside DRF (unknown routes under /api/, bodies too large, a middleware reading a broken form)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import BadRequest, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views import defaults
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


def _bad_request(exc: Exception) -> DomainError | None:
    """Django's own refusals of a request (raised while reading the body), as domain errors."""
    if isinstance(exc, RequestDataTooBig):  # DATA_UPLOAD_MAX_MEMORY_SIZE
        return DomainError("The request body is larger than this server accepts.", code="too_large",
                           http_status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, (MultiPartParserError, BadRequest, SuspiciousOperation)):
        return DomainError("The request could not be read.", code="bad_request")
    return None


def exception_handler(exc: Exception, context: dict) -> Response | None:
    exc = _bad_request(exc) or exc
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


# --- Django-level handlers (errors raised before or outside DRF) --------------------------------------------


def wants_json(request: HttpRequest) -> bool:
    """API routes, and any request that sent or asked for JSON, get {"code", "detail"}; pages get HTML."""
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    sent = request.content_type or ""
    return sent == "application/json" or ("application/json" in accept and "text/html" not in accept)


def _json(status_code: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    error = _bad_request(exception) or DomainError("The request could not be read.", code="bad_request")
    if wants_json(request):
        return _json(error.http_status, error.code, error.detail)
    response = defaults.bad_request(request, exception)
    response.status_code = error.http_status
    return response


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return _json(403, "permission_denied", "You do not have permission to do this.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return _json(404, "not_found", "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return _json(500, "server_error", "Something went wrong on our side; it has been logged.")
    return defaults.server_error(request)
