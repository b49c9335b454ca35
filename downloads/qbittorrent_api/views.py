"""qBittorrent Web API v2 endpoints (thin: parse, call services, render) and the user's settings page.

Every endpoint answers like qbittorrent-nox 4.5.2: plain-text bodies ("Ok.", "Fails.", "Forbidden", "Not Found",
"Bad Request"), JSON without spaces, 403 without a session, 405 for a GET to an action, 401 when a browser's
Origin/Referer names another host (qBittorrent's CSRF check). No input, however malformed, is a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.errors import DomainError
from downloads.qbittorrent_api import services, shapes, sync
from downloads.qbittorrent_api.models import QbtCategory
from downloads.qbittorrent_api.services import QbtError, bad_request

# qBittorrent's own cap on a request body (its HTTP parser's MAX_CONTENT_SIZE): several .torrent files fit.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
SID_COOKIE = "SID"

Params = dict[str, str]


def text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=UTF-8")


def as_json(data) -> HttpResponse:
    return HttpResponse(json.dumps(data, separators=(",", ":")), content_type="application/json")


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _foreign_origin(request: HttpRequest) -> bool:
    """An Origin or Referer naming another host than the one asked (a page on another site posting here)."""
    host = request.META.get("HTTP_HOST", "")
    for header in ("HTTP_ORIGIN", "HTTP_REFERER"):
        value = request.META.get(header)
        if value and urlsplit(value).netloc != host:
            return True
    return False


def _params(request: HttpRequest) -> Params:
    """qBittorrent reads one parameter set from the query string and the form body (the body wins)."""
    params = {k: request.GET.get(k, "") for k in request.GET}
    if request.method == "POST":
        params.update({k: request.POST.get(k, "") for k in request.POST})
    return params


def _user(request: HttpRequest):
    return (services.session_user(request.COOKIES.get(SID_COOKIE))
            or services.bearer_user(request.headers.get("Authorization", "")))


def endpoint(*, post: bool = False, auth: bool = True) -> Callable:
    """Wrap an endpoint `fn(request, user, params)`: qBittorrent's checks in its order, and its error bodies."""

    def wrap(fn: Callable) -> Callable:
        @csrf_exempt  # clients are not browsers; the Origin/Referer check and SameSite=Strict stand in for it
        @wraps(fn)
        def view(request: HttpRequest, *args) -> HttpResponse:
            try:
                if _foreign_origin(request):
                    return text("Unauthorized", 401)
                user = _user(request) if auth else None
                if auth and user is None:
                    return text("Forbidden", 403)
                if request.method not in ("GET", "POST") or (post and request.method != "POST"):
                    return text("Method Not Allowed", 405)
                if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_REQUEST_BYTES:
                    return text("Payload Too Large", 413)
                return fn(request, user, _params(request), *args)
            except QbtError as exc:
                return text(exc.body, exc.status)
            except RequestDataTooBig:
                return text("Payload Too Large", 413)
            except (MultiPartParserError, BadRequest, SuspiciousOperation, UnicodeDecodeError, ValueError):
                return text("Bad Request", 400)

        return view

    return wrap


def _flag(params: Params, name: str) -> bool:
    return params.get(name, "").strip().lower() == "true"


def _hashes(params: Params, name: str = "hashes") -> list[str] | None:
    return services.parse_hashes(params.get(name))


def _required(params: Params, name: str) -> str:
    if name not in params:
        raise bad_request()
    return params[name]


# --- auth --------------------------------------------------------------------------------------------


@endpoint(post=True, auth=False)
def login(request, user, params: Params) -> HttpResponse:
    if services.session_user(request.COOKIES.get(SID_COOKIE)):
        return text("Ok.")  # qBittorrent: an already logged-in client is told so without a check
    sid = services.login(params.get("username", ""), params.get("password", ""), _client_ip(request))
    if sid is None:
        return text("Fails.")
    response = text("Ok.")
    response.set_cookie(SID_COOKIE, sid, httponly=True, samesite="Strict", path="/",
                        secure=request.is_secure())
    return response


@endpoint(post=True)
def logout(request, user, params: Params) -> HttpResponse:
    services.logout(request.COOKIES.get(SID_COOKIE))
    response = text("")
    response.delete_cookie(SID_COOKIE, path="/")
    return response


# --- app ---------------------------------------------------------------------------------------------


@endpoint()
def version(request, user, params: Params) -> HttpResponse:
    return text(shapes.VERSION)


@endpoint()
def webapi_version(request, user, params: Params) -> HttpResponse:
    return text(shapes.WEBAPI_VERSION)


@endpoint()
def build_info(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.BUILD_INFO)


@endpoint()
def preferences(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.preferences(user))


@endpoint()
def default_save_path(request, user, params: Params) -> HttpResponse:
    return text(shapes.user_save_path(user.pk))


# --- reading torrents --------------------------------------------------------------------------------

_FILTERS: dict[str, Callable[[dict], bool]] = {
    "downloading": lambda t: t["state"] in shapes.DOWNLOAD_STATES,
    "seeding": lambda t: t["state"] in ("uploading", "stalledUP", "queuedUP", "checkingUP", "forcedUP"),
    "completed": lambda t: t["state"].endswith("UP"),
    "paused": lambda t: t["state"].startswith(("paused", "stopped")),
    "stopped": lambda t: t["state"].startswith(("paused", "stopped")),
    "resumed": lambda t: not t["state"].startswith(("paused", "stopped")),
    "running": lambda t: not t["state"].startswith(("paused", "stopped")),
    "active": lambda t: bool(t["dlspeed"] or t["upspeed"]),
    "inactive": lambda t: not (t["dlspeed"] or t["upspeed"]),
    "stalled": lambda t: t["state"] in ("stalledUP", "stalledDL"),
    "stalled_uploading": lambda t: t["state"] == "stalledUP",
    "stalled_downloading": lambda t: t["state"] == "stalledDL",
    "errored": lambda t: t["state"] in ("error", "missingFiles"),
}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


@endpoint()
def torrents_info(request, user, params: Params) -> HttpResponse:
    jobs = services.visible_jobs(user)
    if "hashes" in params:
        jobs = services.jobs_for(user, _hashes(params))
    if "category" in params:  # present but empty: the torrents without a category
        name = params["category"]
        jobs = jobs.filter(qbt__category__name=name) if name else jobs.exclude(qbt__category__isnull=False)
    rows = shapes.torrent_list(user, jobs)
    if (keep := _FILTERS.get(params.get("filter", "all"))) is not None:
        rows = [r for r in rows if keep(r)]
    if "tag" in params:
        tag = params["tag"]
        rows = [r for r in rows if (tag in r["tags"].split(", ") if tag else not r["tags"])]
    if (key := params.get("sort")) and rows and key in rows[0]:
        rows.sort(key=lambda r: (str(type(r[key])), r[key]), reverse=_flag(params, "reverse"))
    offset = _int(params.get("offset"), 0)
    if offset < 0:
        offset = max(0, len(rows) + offset)
    limit = _int(params.get("limit"), 0)
    rows = rows[offset:offset + limit] if limit > 0 else rows[offset:]
    return as_json(rows)


@endpoint()
def torrent_properties(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.properties(services.job_for(user, params.get("hash"))))


@endpoint()
def torrent_files(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.files(services.job_for(user, params.get("hash"))))


@endpoint()
def torrent_trackers(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.tracker_rows(services.job_for(user, params.get("hash"))))


@endpoint()
def categories(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.categories(user))


@endpoint()
def tags(request, user, params: Params) -> HttpResponse:
    return as_json(services.all_tags(user))


# --- changing torrents -------------------------------------------------------------------------------


@endpoint(post=True)
def add(request, user, params: Params) -> HttpResponse:
    urls = [u.strip() for u in params.get("urls", "").splitlines() if u.strip()]
    # Every uploaded file, whatever its field is called: qBittorrent reads them all, and qbittorrent-api names
    # each field after its file ("torrents" is only what the WebUI and the *arr apps send).
    uploads = [services.Upload(f.name or "", f.read(settings.TORRENT_MAX_BYTES + 1))
               for field in request.FILES for f in request.FILES.getlist(field)]
    options = services.AddOptions(
        category=params.get("category", "").strip(),
        tags=services.split_tags(params.get("tags")),
        paused=_flag(params, "paused") or _flag(params, "stopped"),
        sequential=_flag(params, "sequentialDownload"),
        first_last_piece=_flag(params, "firstLastPiecePrio"),
        ratio_limit=services.parse_limit(params["ratioLimit"], integer=False) if "ratioLimit" in params else -2,
        seeding_time_limit=(services.parse_limit(params["seedingTimeLimit"], integer=True)
                            if "seedingTimeLimit" in params else -2),
    )
    if not urls and not uploads:
        return text("Fails.")
    return text("Ok." if services.add(user, urls, uploads, options) else "Fails.")


@endpoint(post=True)
def delete(request, user, params: Params) -> HttpResponse:
    delete_files = _required(params, "deleteFiles").strip().lower() == "true"
    services.delete(user, _hashes(params), delete_files=delete_files)
    return text("")


@endpoint(post=True)
def pause(request, user, params: Params) -> HttpResponse:
    services.pause(user, _hashes(params))
    return text("")


@endpoint(post=True)
def resume(request, user, params: Params) -> HttpResponse:
    services.resume(user, _hashes(params))
    return text("")


@endpoint(post=True)
def set_force_start(request, user, params: Params) -> HttpResponse:
    if _flag(params, "value"):
        services.resume(user, _hashes(params))
    return text("")


@endpoint(post=True)
def set_category(request, user, params: Params) -> HttpResponse:
    services.set_category(user, _hashes(params), _required(params, "category").strip())
    return text("")


@endpoint(post=True)
def add_tags(request, user, params: Params) -> HttpResponse:
    services.add_tags(user, _hashes(params), services.split_tags(_required(params, "tags")))
    return text("")


@endpoint(post=True)
def remove_tags(request, user, params: Params) -> HttpResponse:
    services.remove_tags(user, _hashes(params), services.split_tags(params.get("tags")))
    return text("")


@endpoint(post=True)
def create_tags(request, user, params: Params) -> HttpResponse:
    services.create_tags(user, services.split_tags(_required(params, "tags")))
    return text("")


@endpoint(post=True)
def delete_tags(request, user, params: Params) -> HttpResponse:
    services.delete_tags(user, services.split_tags(_required(params, "tags")))
    return text("")


@endpoint(post=True)
def create_category(request, user, params: Params) -> HttpResponse:
    services.create_category(user, _required(params, "category").strip(), params.get("savePath", ""))
    return text("")


@endpoint(post=True)
def edit_category(request, user, params: Params) -> HttpResponse:
    services.edit_category(user, _required(params, "category").strip(), _required(params, "savePath"))
    return text("")


@endpoint(post=True)
def remove_categories(request, user, params: Params) -> HttpResponse:
    names = [n.strip() for n in _required(params, "categories").splitlines() if n.strip()]
    services.remove_categories(user, names)
    return text("")


@endpoint(post=True)
def set_share_limits(request, user, params: Params) -> HttpResponse:
    hashes = _hashes(params)
    ratio = services.parse_limit(_required(params, "ratioLimit"), integer=False)
    minutes = services.parse_limit(_required(params, "seedingTimeLimit"), integer=True)
    services.set_share_limits(user, hashes, ratio, int(minutes))
    return text("")


@endpoint(post=True)
def queue_priority(request, user, params: Params) -> HttpResponse:
    """topPrio, bottomPrio, increasePrio, decreasePrio: Flotilla's dispatch order is its own (fair between
    users), so it answers as a qBittorrent with queueing off does; Sonarr and Radarr expect and ignore this."""
    _hashes(params)
    return text("Torrent queueing must be enabled", 409)


@endpoint(post=True)
def toggle_sequential(request, user, params: Params) -> HttpResponse:
    services.toggle(user, _hashes(params), "sequential")
    return text("")


@endpoint(post=True)
def toggle_first_last(request, user, params: Params) -> HttpResponse:
    services.toggle(user, _hashes(params), "first_last_piece")
    return text("")


# --- sync and transfer -------------------------------------------------------------------------------


@endpoint()
def maindata(request, user, params: Params) -> HttpResponse:
    session = request.COOKIES.get(SID_COOKIE) or f"bearer:{user.pk}"
    return as_json(sync.maindata(user, session, max(0, _int(params.get("rid"), 0))))


@endpoint()
def transfer_info(request, user, params: Params) -> HttpResponse:
    return as_json(shapes.transfer_info(user))


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return text("Not Found", 404)


# --- the settings page -------------------------------------------------------------------------------


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    """Where to point Sonarr/Radarr/Readarr/Lidarr/AudioBookRequest, and which backend each category uses."""
    error = ""
    if request.method == "POST":
        try:
            services.set_category_backend(request.user, request.POST.get("category", ""),
                                          request.POST.get("backend", ""))
        except DomainError as exc:
            error = exc.detail
        else:
            return redirect("qbittorrent:settings")
    base = request.build_absolute_uri("/qbittorrent/").rstrip("/")
    split = urlsplit(base)
    return render(request, "qbittorrent_api/settings.html", {
        "nav": "qbittorrent", "base_url": base, "host": split.hostname, "port": split.port or
        (443 if split.scheme == "https" else 80), "use_ssl": split.scheme == "https", "url_base": "/qbittorrent",
        "username": request.user.email, "save_path": shapes.user_save_path(request.user.pk),
        "categories": QbtCategory.objects.filter(user=request.user), "error": error,
        "default_backend": settings.DEFAULT_BACKEND,
    })
