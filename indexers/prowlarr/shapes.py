"""Prowlarr's resources (ReleaseResource, IndexerResource, IndexerCategory, SystemResource) from Flotilla's rows.

Prowlarr's serializer conventions, which its clients depend on: camelCase names, nulls omitted (never
`"seeders": null`: AudioBookRequest's pydantic models reject it and then show no results at all), integer
sizes, `protocol` only "torrent", dates `YYYY-MM-DDTHH:MM:SSZ`. Private-tracker links, passkeys and
private info-hashes never appear: `downloadUrl` is Flotilla's signed proxy link.
"""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime

from django.http import HttpRequest
from django.utils import timezone

from indexers import services
from indexers.models import Indexer, SearchResult
from indexers.prowlarr.common import CATEGORY_NAMES, STANDARD_CATEGORIES, download_url, utc_z

IMPLEMENTATIONS = {"myanonamouse": "MyAnonamouse", "torznab": "Torznab", "yts": "YTS", "nyaa": "Nyaa"}
PRIVACY = {"public": "public", "semi_private": "semiPrivate", "private": "private"}
# Torznab's lower-case parameter names → Prowlarr's enum names (TvSearchParam, MovieSearchParam, …).
PARAM_NAMES = {"imdbid": "imdbId", "tvdbid": "tvdbId", "tmdbid": "tmdbId", "rid": "rId", "tvmazeid": "tvMazeId",
               "traktid": "traktId", "doubanid": "doubanId", "imdbtitle": "imdbTitle", "imdbyear": "imdbYear"}
SEARCH_TYPES = {"search": "searchParams", "tvsearch": "tvSearchParams", "movie": "movieSearchParams",
                "music": "musicSearchParams", "book": "bookSearchParams"}
_NOT_WORD = re.compile(r"[^a-z0-9]+")
STARTED_AT = datetime.now(tz=UTC)


def compact(data: dict) -> dict:
    """Prowlarr omits nulls (System.Text.Json WhenWritingNull)."""
    return {k: v for k, v in data.items() if v is not None}


def category(cid: int, subs: list[dict] | None = None, name: str | None = None) -> dict:
    return compact({"id": cid, "name": name or CATEGORY_NAMES.get(cid), "subCategories": subs or []})


def category_tree() -> list[dict]:
    """GET /api/v1/indexer/categories: the standard parents with their children."""
    return [category(cid, [category(sid) for sid, _ in subs]) for cid, (_name, subs) in STANDARD_CATEGORIES.items()]


def sort_title(title: str) -> str:
    return _NOT_WORD.sub(" ", title.lower()).strip()


def _public(result: SearchResult) -> bool:
    return result.indexer.privacy == "public"


def release(request: HttpRequest, prefix: str, result: SearchResult, now: datetime | None = None) -> dict:
    """One ReleaseResource. A public magnet-only result gets `magnetUrl` (starting `magnet:?xt=urn:btih:`, as
    AudioBookRequest parses it) and no `downloadUrl`; everything else the signed proxy link."""
    now = now or timezone.now()
    published = result.published_at or now
    age = max((now - published).total_seconds(), 0)
    magnet = result.magnet if _public(result) and result.magnet.startswith("magnet:?xt=urn:btih:") else None
    link = download_url(request, prefix, result) if result.download_url or not magnet else None
    return compact({
        "guid": result.guid, "age": int(age // 86400), "ageHours": round(age / 3600, 2),
        "ageMinutes": round(age / 60, 2), "size": int(result.size), "files": result.files, "grabs": int(result.grabs),
        "indexerId": result.indexer_id, "indexer": result.indexer.name, "title": result.title,
        "sortTitle": sort_title(result.title), "approved": False, "imdbId": 0, "publishDate": utc_z(published),
        "infoUrl": result.info_url or None, "downloadUrl": link, "magnetUrl": magnet,
        "indexerFlags": [str(f) for f in result.flags or []],
        "categories": [category(int(c)) for c in result.categories or []],
        "infoHash": (result.info_hash or None) if _public(result) else None,
        "seeders": int(result.seeders), "leechers": int(result.leechers), "protocol": "torrent",
        "fileName": f"{result.title}.torrent",
    })


def _caps(indexer: Indexer) -> dict:
    caps = services.capabilities(indexer)
    data = {"id": 0, "limitsMax": caps.limit_max, "limitsDefault": min(100, caps.limit_max),
            "categories": [category(int(c["id"]), [category(int(s["id"]), name=s.get("name"))
                                                   for s in c.get("subcats", [])], name=c.get("name"))
                           for c in caps.categories],
            "supportsRawSearch": False}
    for kind, name in SEARCH_TYPES.items():
        data[name] = [PARAM_NAMES.get(p, p) for p in caps.searching.get(kind, [])]
    return data


def _status(indexer: Indexer) -> dict | None:
    if not indexer.in_backoff():
        return None
    return compact({"indexerId": indexer.pk, "disabledTill": utc_z(indexer.backoff_until),
                    "mostRecentFailure": utc_z(indexer.last_failure_at) if indexer.last_failure_at else None})


def indexer(item: Indexer, user) -> dict:
    """One IndexerResource (AudioBookRequest reads id, name, enable, privacy). The URL only for the user's own
    indexers: an operator's shared feed may be an internal address."""
    name = IMPLEMENTATIONS.get(item.kind, item.kind)
    return compact({
        "id": item.pk, "name": item.name, "fields": [], "implementationName": name, "implementation": name,
        "configContract": f"{name}Settings", "infoLink": "https://wiki.servarr.com/prowlarr/supported-indexers",
        "tags": [], "indexerUrls": [item.url] if item.owner_id == user.pk else [],
        "description": item.get_kind_display(), "language": "en-US", "enable": item.enabled, "redirect": False,
        "supportsRss": False, "supportsSearch": True, "supportsRedirect": False, "supportsPagination": False,
        "appProfileIds": [], "protocol": "torrent", "privacy": PRIVACY.get(item.privacy, "private"),
        "capabilities": _caps(item), "priority": item.priority, "downloadClientId": 0,
        "added": utc_z(item.created_at), "status": _status(item), "sortName": sort_title(item.name),
    })


def system_status(user, url_base: str) -> dict:
    return {
        "appName": "Flotilla", "instanceName": "Flotilla", "version": "1.0.0", "buildTime": utc_z(STARTED_AT),
        "isDebug": False, "isProduction": True, "isAdmin": bool(user.is_staff), "isUserInteractive": False,
        "osName": platform.system().lower(), "osVersion": platform.release(), "isNetCore": False,
        "isLinux": platform.system() == "Linux", "isOsx": platform.system() == "Darwin",
        "isWindows": platform.system() == "Windows", "isDocker": False, "mode": "console", "branch": "main",
        "databaseType": "postgreSQL", "authentication": "external", "migrationVersion": 1, "urlBase": url_base,
        "runtimeName": "python", "runtimeVersion": platform.python_version(), "startTime": utc_z(STARTED_AT),
    }
