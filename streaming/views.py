"""File delivery endpoints: the job's file listing (API) and the signed-link downloads under /d/.

The /d/ views take no session: the signed token in the URL is the credential (see streaming/links.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import DomainError
from config.logging import request_id_var
from downloads.models import Job
from streaming import files, links, sending, shares, zips


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


# --- share links: /s/<token>/ (streaming/shares.py) ------------------------------------------------------

_SHARE_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "private, no-store",
                       "X-Robots-Tag": "noindex, nofollow"}


def _share_refused(request: HttpRequest, exc: DomainError) -> HttpResponse:
    """A visitor has a browser, not an API client: a refusal is a short page saying why (410 gone, 404…)."""
    headers = {**_SHARE_PAGE_HEADERS, **(getattr(exc, "headers", None) or {})}
    response = render(request, "streaming/share_gone.html", {"message": exc.detail, "code": exc.code},
                      status=exc.http_status)
    for name, value in headers.items():
        response[name] = value
    response._has_been_logged = True  # the path holds the token
    return response


@require_http_methods(["GET", "HEAD"])
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    """/s/<token>/: the shared files with their download links (and the zip of a whole job)."""
    try:
        share = shares.find_share(token)
    except DomainError as exc:
        return _share_refused(request, exc)
    context = {"share": share, "links": shares.page_links(share)}
    response = render(request, "streaming/share.html", context)
    for name, value in _SHARE_PAGE_HEADERS.items():
        response[name] = value
    return response


def _share_send(request: HttpRequest, share, answer: sending.Delivery, full_size: int,
                chunks: Callable[[], Iterator[bytes]], after: Callable[[int], None] | None = None) -> HttpResponse:
    if request.method == "GET":
        first_byte = min(s.start for s in answer.segments) if answer.status == 206 else 0
        shares.start_download(share, first_byte=first_byte, length=int(answer.headers["Content-Length"]),
                              full_size=full_size)

    def done(sent: int) -> None:
        shares.count_bytes(share.pk, sent)
        if after is not None:
            after(sent)

    answer.log_fields["share"] = share.pk
    return _respond(request, answer, chunks, share.user_id, after=done)


@require_http_methods(["GET", "HEAD"])
def share_file(request: HttpRequest, token: str, file_id: int, name: str) -> HttpResponse:
    """/s/<token>/f/<file id>/<name>: one shared file, Range as for any file; metered on the owner."""
    try:
        share = shares.find_share(token, allow_exhausted=True)
        target = shares.file_target(share, file_id)
        answer = files.plan_file(target, range_header=request.headers.get("Range"),
                                 if_range=request.headers.get("If-Range"), inline=False)
        return _share_send(request, share, answer, target.size,
                           lambda: files.read_file(target, answer.segments, answer.trailer))
    except DomainError as exc:
        return _share_refused(request, exc)


@require_http_methods(["GET", "HEAD"])
def share_zip(request: HttpRequest, token: str, name: str) -> HttpResponse:
    """/s/<token>/zip/<name>.zip: the whole shared job as a zip that resumes; metered on the owner."""
    try:
        share = shares.find_share(token, allow_exhausted=True)
        target = shares.zip_target(share)
        answer = zips.plan_zip(target, range_header=request.headers.get("Range"),
                               if_range=request.headers.get("If-Range"))
        return _share_send(request, share, answer, target.size,
                           lambda: zips.read_zip(target, answer.segments, answer.trailer),
                           after=lambda sent: zips.remember_crcs(target.archive))
    except DomainError as exc:
        return _share_refused(request, exc)
