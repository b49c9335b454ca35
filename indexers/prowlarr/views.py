"""Prowlarr API v1 endpoints (thin: parse, call one service, render), as Prowlarr answers them.

Auth like Prowlarr's ApiKeyAuthenticationHandler: `apikey` query parameter, then `X-Api-Key`, then
`Authorization: Bearer`, with a Flotilla API key: its user is who searches and whose job a grab becomes. A
missing or bad key is a 401 with an empty body. Errors are Prowlarr's `{"message", "description"}` with its
status codes (400 bad input, 404 unknown release or indexer, 409 the indexer would not hand the release over);
validation failures of a posted release are FluentValidation's list, as Prowlarr sends them. No input, however
malformed, is a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from config.errors import DomainError
from indexers import services
from indexers.models import Indexer
from indexers.prowlarr import common, shapes

NOT_IN_CACHE = "Couldn't find requested release in cache, try searching again"
DOWNLOAD_FAILED = "Getting release from indexer failed"
MAX_BODY = 1024 * 1024
MAX_BULK = 100
KINDS = ("search", "tvsearch", "movie", "music", "book")


class ApiError(Exception):
    def __init__(self, status: int, message: str, description: str | None = None):
        super().__init__(message)
        self.status, self.message, self.description = status, message, description


def as_json(data, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data, separators=(",", ":"), ensure_ascii=False), status=status,
                        content_type="application/json; charset=utf-8")


def error(status: int, message: str, description: str | None = None) -> HttpResponse:
    return as_json(shapes.compact({"message": message, "description": description}), status)


def prefix() -> str:
    return reverse("prowlarr:ping").removesuffix("ping")


def endpoint(*, methods: tuple[str, ...] = ("GET",), auth: bool = True) -> Callable:
    """Wrap `fn(request, user, *args)`: method, key, then Prowlarr's error bodies for what the call raises."""

    def wrap(fn: Callable) -> Callable:
        @csrf_exempt  # API clients, not browsers: the key is the credential, never a cookie
        @never_cache
        @wraps(fn)
        def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())
            if request.method not in allowed:
                return error(405, "Method Not Allowed")
            user = common.key_user(request) if auth else None
            if auth and user is None:
                return HttpResponse(status=401)  # Prowlarr's challenge: no body
            try:
                return fn(request, user, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message, exc.description)
            except Http404 as exc:
                return error(404, str(exc) or "Not Found")
            except DomainError as exc:
                return error(exc.http_status, str(exc.detail), exc.code)

        return view

    return wrap


# --- query parsing -------------------------------------------------------------------------------------


def _ints(request: HttpRequest, name: str, *, low: int = 1, high: int = 999_999) -> list[int]:
    """Repeated keys and comma lists alike (`?categories=3030&categories=7020`, `?categories=3030,7020`)."""
    values = []
    for raw in request.GET.getlist(name):
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isascii() or not part.lstrip("-").isdigit() or len(part) > 19 or not low <= int(part) <= high:
                raise ApiError(400, f"The value '{part[:40]}' is not valid for {name}.")
            values.append(int(part))
    return values[:100]


def _int(request: HttpRequest, name: str, default: int, high: int) -> int:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ApiError(400, f"The value '{raw[:40]}' is not valid for {name}.")
    return min(int(raw), high)


def _body(request: HttpRequest):
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY:
        raise ApiError(413, "Request body too large")
    try:
        return json.loads(request.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "The request body is not valid JSON.") from None


def _grab_key(item) -> tuple[str, int, int | None]:
    """guid, indexerId and downloadClientId of a posted release (keys case-insensitive, as Prowlarr reads
    them); FluentValidation's messages when they are missing."""
    if not isinstance(item, dict):
        raise _invalid("", "Release", "A release object is required.")
    fields = {str(k).lower(): v for k, v in item.items()}
    guid, indexer_id = fields.get("guid"), fields.get("indexerid")
    if not isinstance(guid, str) or not guid.strip() or len(guid) > 4000:
        raise _invalid(guid, "Guid", "'Guid' must not be empty.")
    if isinstance(indexer_id, bool) or not isinstance(indexer_id, int) or not 0 < indexer_id <= common.MAX_ID:
        raise _invalid(indexer_id, "IndexerId", "'Indexer Id' must be greater than '0'.")
    client = fields.get("downloadclientid")
    if client in (None, 0):
        return guid, indexer_id, None
    if isinstance(client, bool) or not isinstance(client, int) or not 0 < client <= common.MAX_ID:
        raise _invalid(client, "DownloadClientId", "'Download Client Id' is not valid.")
    return guid, indexer_id, client


class _Invalid(ApiError):
    def __init__(self, errors: list[dict]):
        super().__init__(400, errors[0]["errorMessage"])
        self.errors = errors


def _invalid(value, prop: str, message: str) -> _Invalid:
    return _Invalid([{"propertyName": prop, "errorMessage": message,
                      "attemptedValue": value if isinstance(value, (str, int, float, bool)) else None,
                      "severity": "error"}])


# --- endpoints ----------------------------------------------------------------------------------------


@endpoint(auth=False)
def ping(request, user) -> HttpResponse:
    return as_json({"status": "OK"})


@endpoint()
def api_info(request, user) -> HttpResponse:
    return as_json({"current": "v1", "deprecated": []})


@endpoint()
def system_status(request, user) -> HttpResponse:
    return as_json(shapes.system_status(user, prefix().rstrip("/")))


@endpoint()
def indexer_list(request, user) -> HttpResponse:
    indexers = Indexer.objects.for_user(user).select_related("owner")
    return as_json([shapes.indexer(i, user) for i in indexers])


@endpoint()
def indexer_detail(request, user, indexer_id: str) -> HttpResponse:
    pk = common.parse_id(indexer_id)
    item = Indexer.objects.for_user(user).filter(pk=pk).first() if pk else None
    if item is None:
        raise ApiError(404, f"Indexer with ID {indexer_id[:20]} does not exist")
    return as_json(shapes.indexer(item, user))


@endpoint()
def categories(request, user) -> HttpResponse:
    return as_json(shapes.category_tree())


@endpoint(methods=("GET", "POST"))
def search(request, user) -> HttpResponse:
    if request.method == "POST":
        return _grab(request, user)
    kind = request.GET.get("type", "search").strip().lower() or "search"
    outcome = services.search(
        user, request.GET.get("query", "")[:1000], kind=kind if kind in KINDS else "search",
        indexer_ids=_ints(request, "indexerIds", high=common.MAX_ID) or None,
        categories=_ints(request, "categories") or None,
        limit=_int(request, "limit", 100, services.MAX_LIMIT), offset=_int(request, "offset", 0, 100_000))
    return as_json([shapes.release(request, prefix(), r) for r in outcome.results])


def _grab(request: HttpRequest, user) -> HttpResponse:
    try:
        guid, indexer_id, client = _grab_key(_body(request))
    except _Invalid as exc:
        return as_json(exc.errors, 400)
    return as_json(_grab_one(request, user, guid, indexer_id, client))


def _grab_one(request: HttpRequest, user, guid: str, indexer_id: int, client: int | None) -> dict:
    """Prowlarr's GrabRelease: 404 for a release never searched (or expired), 409 when the indexer will not
    hand it over; else a job on the user's default backend (or their torrent server `downloadClientId`)."""
    try:
        result_id = services.find_result(user, indexer_id, guid)
    except Http404:
        raise ApiError(404, NOT_IN_CACHE) from None
    try:
        services.grab(user, result_id, f"server:{client}" if client else None)
    except services.IndexerUnavailable as exc:
        raise ApiError(409, DOWNLOAD_FAILED, str(exc.detail)) from None
    return shapes.release(request, prefix(), services.get_result(user, result_id))


@endpoint(methods=("POST",))
def search_bulk(request, user) -> HttpResponse:
    """Prowlarr's bulk grab: every release tried, a failed one only logged; the posted list echoed."""
    releases = _body(request)
    if not isinstance(releases, list) or len(releases) > MAX_BULK:
        raise ApiError(400, f"A JSON array of at most {MAX_BULK} releases is required.")
    try:
        keys = [_grab_key(item) for item in releases]
    except _Invalid as exc:
        return as_json(exc.errors, 400)
    for guid, indexer_id, client in keys:
        try:
            _grab_one(request, user, guid, indexer_id, client)
        except (ApiError, DomainError):
            continue
    return as_json(releases)


@endpoint()
def download(request, user, indexer_id: str) -> HttpResponse:
    """The .torrent of a result, fetched by Flotilla with the indexer's credentials (never a redirect to a
    magnet: AudioBookRequest's aiohttp cannot follow one)."""
    pk = common.parse_id(indexer_id)
    if pk is None or not Indexer.objects.for_user(user).filter(pk=pk).exists():
        raise ApiError(404, "Indexer Not Found")
    token = request.GET.get("link", "")
    if not token:
        raise ApiError(400, "Invalid Prowlarr link")
    try:
        data, title = common.fetch(user, pk, token)
    except Http404:
        raise ApiError(404, NOT_IN_CACHE) from None
    except DomainError as exc:
        raise ApiError(409, DOWNLOAD_FAILED, str(exc.detail)) from None
    return torrent_response(data, title)


@endpoint(methods=("GET", "POST", "PUT", "DELETE"))
def not_found(request, user) -> HttpResponse:
    return error(404, "Not Found")


def torrent_response(data: bytes, title: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/x-bittorrent")
    name = "".join(c if c.isalnum() or c in " .-_()[]" else "_" for c in title)[:180] or "release"
    response["Content-Disposition"] = f'attachment; filename="{name}.torrent"'
    return response
