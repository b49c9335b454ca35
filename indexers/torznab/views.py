"""Torznab endpoints: `/torznab/<id>/api` per indexer, `/torznab/all/api` across the user's indexers, and the
download proxy `/torznab/<id>/download`. Thin: parse, call one service, render (indexers/torznab/feeds.py).

Auth is the Flotilla API key in `apikey` (as every Torznab client sends it; `X-Api-Key` also works). Errors
are Newznab's `<error code description>` with the status Jackett and Prowlarr use: 401/100 for bad
credentials (Sonarr maps 100-199 to "Invalid API key"), 400/200 missing parameter, 400/201 incorrect
parameter, 400/202 no such function, 404/201 unknown indexer (another user's included), 410 disabled,
429 backed off (with Retry-After). A failed upstream search of a one-indexer feed is 200 with
`<error code="900">`, which Sonarr records as that indexer's failure; the all-indexers feed answers with what
arrived. No input is a 5xx.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from config.errors import DomainError
from indexers import services
from indexers.clients.base import SEARCH_KINDS
from indexers.models import Indexer
from indexers.prowlarr import common
from indexers.prowlarr.views import torrent_response
from indexers.torznab import feeds

ALL = "all"
# Torznab parameters that become structured query fields (the rest is ignored, as Jackett ignores it).
FIELDS = {"season": "season", "ep": "ep", "imdbid": "imdbid", "tvdbid": "tvdbid", "tmdbid": "tmdbid",
          "author": "author", "title": "title", "artist": "artist", "album": "album", "label": "label",
          "track": "track", "year": "year", "genre": "genre", "publisher": "publisher"}
ID_FIELDS = {"imdbid", "tvdbid", "tmdbid", "season", "ep", "year"}


class FeedError(Exception):
    def __init__(self, status: int, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.status, self.code, self.description, self.retry_after = status, code, description, retry_after


def xml(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/rss+xml; charset=utf-8")


def feed_error(exc: FeedError) -> HttpResponse:
    response = xml(feeds.error(exc.code, exc.description), exc.status)
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    return response


def prefix() -> str:
    return reverse("torznab:api", args=[ALL]).removesuffix(f"{ALL}/api")


def endpoint(fn: Callable) -> Callable:
    @csrf_exempt
    @never_cache
    @wraps(fn)
    def view(request: HttpRequest, indexer_id: str) -> HttpResponse:
        try:
            if request.method not in ("GET", "HEAD", "POST"):
                raise FeedError(405, 203, "Function not available")
            user = common.key_user(request)
            if user is None:
                raise FeedError(401, 100, "Incorrect user credentials")
            return fn(request, user, _indexer(user, indexer_id))
        except FeedError as exc:
            return feed_error(exc)

    return view


def _indexer(user, raw: str) -> Indexer | None:
    """None for the all-indexers feed; else the user's indexer, in a state that can answer."""
    if raw == ALL:
        return None
    pk = common.parse_id(raw)
    indexer = Indexer.objects.for_user(user).filter(pk=pk).first() if pk else None
    if indexer is None:
        raise FeedError(404, 201, "Indexer is not supported")
    if not indexer.enabled:
        raise FeedError(410, 410, "Indexer is disabled")
    if indexer.in_backoff():
        seconds = math.ceil((indexer.backoff_until - timezone.now()).total_seconds())
        raise FeedError(429, 429, f"Indexer is disabled till {indexer.backoff_until:%Y-%m-%d %H:%M:%S} UTC due to "
                                  "recent failures.", retry_after=max(seconds, 1))
    return indexer


def _number(params, name: str, default: int, high: int) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise FeedError(400, 201, f"Incorrect parameter ({name})")
    return min(int(raw), high)


def _categories(params) -> list[int]:
    cats = []
    for part in params.get("cat", "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isascii() or not part.isdigit() or len(part) > 7:
            raise FeedError(400, 201, "Incorrect parameter (cat)")
        cats.append(int(part))
    return cats[:100]


def _query(params, kind: str):
    q = services.parse_query(params.get("q", "")[:1000], kind)
    for name, field in FIELDS.items():
        value = " ".join(params.get(name, "").split())[:200]
        if not value:
            continue
        if name in ID_FIELDS and not value.removeprefix("tt").isalnum():
            raise FeedError(400, 201, f"Incorrect parameter ({name})")
        q.fields[field] = value
    return q


@endpoint
def api(request: HttpRequest, user, indexer: Indexer | None) -> HttpResponse:
    params = request.GET
    function = params.get("t", "").strip().lower()
    if not function:
        raise FeedError(400, 200, "Missing parameter (t)")
    if function == "caps":
        if indexer is not None:
            return xml(feeds.caps(services.capabilities(indexer)))
        usable = services.usable_indexers(user)
        return xml(feeds.caps(feeds.merge_caps([services.capabilities(i) for i in usable])))
    if function not in SEARCH_KINDS:
        raise FeedError(400, 202, f"No such function ({function[:40]})")
    try:
        outcome = services.search(user, _query(params, function), kind=function,
                                  indexer_ids=[indexer.pk] if indexer else None,
                                  categories=_categories(params) or None,
                                  limit=_number(params, "limit", 100, services.MAX_LIMIT),
                                  offset=_number(params, "offset", 0, 100_000))
    except DomainError as exc:
        raise FeedError(400, 201, exc.detail) from None
    if indexer is not None and outcome.errors and not outcome.results:
        raise FeedError(200, 900, outcome.errors[0]["detail"])
    title = indexer.name if indexer else "Flotilla (all indexers)"
    return xml(feeds.results(request, prefix(), title, outcome.results))


@csrf_exempt
@never_cache
def download(request: HttpRequest, indexer_id: str) -> HttpResponse:
    """The same proxy as Prowlarr's, with Newznab errors: 404/300 unknown release, 409/900 the indexer failed."""
    try:
        user = common.key_user(request)
        if user is None:
            raise FeedError(401, 100, "Incorrect user credentials")
        pk = common.parse_id(indexer_id)
        if pk is None or not Indexer.objects.for_user(user).filter(pk=pk).exists():
            raise FeedError(404, 201, "Indexer is not supported")
        try:
            data, title = common.fetch(user, pk, request.GET.get("link", ""))
        except Http404:
            raise FeedError(404, 300, "No such item") from None
        except DomainError as exc:
            raise FeedError(409, 900, f"Getting release from indexer failed: {exc.detail}") from None
        return torrent_response(data, title)
    except FeedError as exc:
        return feed_error(exc)
