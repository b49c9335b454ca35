"""File delivery endpoints: the job's file listing (API) and the signed-link downloads under /d/.

The /d/ views take no session: the signed token in the URL is the credential (see streaming/links.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import DomainError
from config.logging import request_id_var
from downloads.models import Job
from streaming import files, links, sending, zips


class JobFilesView(APIView):
    """GET /api/v1/jobs/{id}/files/: the owner's file list and tree, with fresh signed download/zip links."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int) -> Response:
        job = get_object_or_404(Job.objects.for_user(request.user), pk=pk)
        return Response(links.job_listing(job, request.user, request.build_absolute_uri))


def _error(exc: DomainError) -> HttpResponse:
    response = JsonResponse(exc.as_dict(), status=exc.http_status, headers=getattr(exc, "headers", None))
    # Django logs every 4xx with the request path, and the path holds the token: our own reply says enough.
    response._has_been_logged = True
    return response


def _respond(request: HttpRequest, answer: sending.Delivery, chunks: Callable[[], Iterator[bytes]],
             user_id: int, *, after: Callable[[int], None] | None = None) -> HttpResponse:
    """The streamed answer; `after(sent)` runs once the body has ended (zips save learned CRCs, shares count)."""
    if request.method == "HEAD":
        return HttpResponse(status=answer.status, headers=answer.headers)

    request_id = request_id_var.get()

    def on_done(sent: int) -> None:
        fields = {**answer.log_fields, "status": answer.status}
        sending.finish_delivery(user_id, sent, fields, request_id=request_id)
        if after is not None:
            after(sent)

    body = chunks()
    if answer.multipart:  # parts' headers are tens of bytes: regroup them with the data, fewer sends
        body = sending.coalesce(body)
    # Django drains a sync iterator into a list before sending it over ASGI: give ASGI an async one.
    wrap = sending.ametered if isinstance(request, ASGIRequest) else sending.metered
    return StreamingHttpResponse(wrap(body, on_done), status=answer.status, headers=answer.headers)


@require_http_methods(["GET", "HEAD"])
def file_download(request: HttpRequest, token: str, filename: str) -> HttpResponse:
    """/d/f/<token>/<filename>: one file, with Range/If-Range as nginx answers them (docs/architecture.md);
    `?inline=1` to play it in the browser."""
    try:
        target = files.resolve_file(token)
        answer = files.plan_file(
            target,
            range_header=request.headers.get("Range"),
            if_range=request.headers.get("If-Range"),
            inline=request.GET.get("inline") == "1",
        )
    except DomainError as exc:
        return _error(exc)
    return _respond(request, answer, lambda: files.read_file(target, answer.segments, answer.trailer),
                    target.user.pk)


@require_http_methods(["GET", "HEAD"])
def zip_download(request: HttpRequest, token: str, name: str) -> HttpResponse:
    """/d/z/<token>/<name>.zip: a folder (or the whole job) as a STORED zip generated while it is sent, with
    an exact Content-Length and Range/If-Range/HEAD (streaming/zips.py), so a cut download resumes."""
    try:
        target = zips.resolve_zip(token)
        answer = zips.plan_zip(target, range_header=request.headers.get("Range"),
                               if_range=request.headers.get("If-Range"))
    except DomainError as exc:
        return _error(exc)
    return _respond(request, answer, lambda: zips.read_zip(target, answer.segments, answer.trailer),
                    target.user.pk, after=lambda sent: zips.remember_crcs(target.archive))
