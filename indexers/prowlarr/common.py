"""What the Prowlarr and Torznab adapters share: the API key as Prowlarr reads it, the signed download link,
Newznab's standard categories, and the download proxy's one service call.

The download link (`/{indexerId}/download?apikey=…&link=…`) never carries the tracker's URL (it may hold a
passkey): `link` is a signed token naming the stored result, so the proxy fetches the .torrent server-side
with the indexer's credentials. The result must still belong to the key's user and be live.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest

from accounts.authentication import user_for_key
from config.params import MAX_ID
from indexers import services
from indexers.models import SearchResult

LINK_SALT = "indexers.prowlarr.link"
MAX_KEY_LENGTH = 200


def raw_key(request: HttpRequest) -> str:
    """The key in Prowlarr's order: `apikey` query parameter, `X-Api-Key` header, `Authorization: Bearer`."""
    if "apikey" in request.GET:
        return request.GET.get("apikey", "").strip()
    if "X-Api-Key" in request.headers:
        return request.headers.get("X-Api-Key", "").strip()
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def key_user(request: HttpRequest):
    """The active owner of the request's unrevoked Flotilla API key, or None."""
    raw = raw_key(request)
    if not raw or len(raw) > MAX_KEY_LENGTH:
        return None
    return user_for_key(raw)


def sign_link(result: SearchResult) -> str:
    return signing.dumps([result.pk, result.indexer_id], salt=LINK_SALT, compress=True)


def unsign_link(token: str, indexer_id: int) -> int:
    """The result id a link names; Http404 for a forged, foreign or stale token (or another indexer's path)."""
    max_age = settings.SEARCH_RESULT_TTL_DAYS * 86400
    try:
        result_id, linked_indexer = signing.loads(token[:2000], salt=LINK_SALT, max_age=max_age)
    except (signing.BadSignature, ValueError, TypeError):
        raise Http404("Invalid link.") from None
    if not isinstance(result_id, int) or not 0 < result_id <= MAX_ID or linked_indexer != indexer_id:
        raise Http404("Invalid link.")
    return result_id


def download_url(request: HttpRequest, prefix: str, result: SearchResult) -> str:
    """A self-authenticating link to the .torrent (clients fetch it without headers): the key the client used."""
    query = urlencode({"apikey": raw_key(request), "link": sign_link(result), "file": result.title[:200]})
    return request.build_absolute_uri(f"{prefix}{result.indexer_id}/download?{query}")


def fetch(user, indexer_id: int, token: str) -> tuple[bytes, str]:
    """The .torrent bytes and a file name for a signed link (raises Http404 / DomainError)."""
    result_id = unsign_link(token, indexer_id)
    data = services.fetch_torrent(user, result_id)
    title = SearchResult.objects.filter(pk=result_id).values_list("title", flat=True).first() or "release"
    return data, title


def utc_z(value: datetime | None) -> str:
    """Prowlarr's date form, always aware UTC: `YYYY-MM-DDTHH:MM:SSZ`."""
    value = (value or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_id(raw: str) -> int | None:
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


# Newznab's standard categories, as Prowlarr names them (NewznabStandardCategory.cs).
STANDARD_CATEGORIES: dict[int, tuple[str, list[tuple[int, str]]]] = {
    0: ("Other", [(10, "Other/Misc"), (20, "Other/Hashed")]),
    1000: ("Console", [(1010, "Console/NDS"), (1020, "Console/PSP"), (1030, "Console/Wii"), (1040, "Console/XBox"),
                       (1050, "Console/XBox 360"), (1060, "Console/Wiiware"), (1070, "Console/XBox 360 DLC"),
                       (1080, "Console/PS3"), (1090, "Console/Other"), (1110, "Console/3DS"),
                       (1120, "Console/PS Vita"), (1130, "Console/WiiU"), (1140, "Console/XBox One"),
                       (1180, "Console/PS4")]),
    2000: ("Movies", [(2010, "Movies/Foreign"), (2020, "Movies/Other"), (2030, "Movies/SD"), (2040, "Movies/HD"),
                      (2045, "Movies/UHD"), (2050, "Movies/BluRay"), (2060, "Movies/3D"), (2070, "Movies/DVD"),
                      (2080, "Movies/WEB-DL")]),
    3000: ("Audio", [(3010, "Audio/MP3"), (3020, "Audio/Video"), (3030, "Audio/Audiobook"),
                     (3040, "Audio/Lossless"), (3050, "Audio/Other"), (3060, "Audio/Foreign")]),
    4000: ("PC", [(4010, "PC/0day"), (4020, "PC/ISO"), (4030, "PC/Mac"), (4040, "PC/Mobile-Other"),
                  (4050, "PC/Games"), (4060, "PC/Mobile-iOS"), (4070, "PC/Mobile-Android")]),
    5000: ("TV", [(5010, "TV/WEB-DL"), (5020, "TV/Foreign"), (5030, "TV/SD"), (5040, "TV/HD"), (5045, "TV/UHD"),
                  (5050, "TV/Other"), (5060, "TV/Sport"), (5070, "TV/Anime"), (5080, "TV/Documentary")]),
    6000: ("XXX", [(6010, "XXX/DVD"), (6020, "XXX/WMV"), (6030, "XXX/XviD"), (6040, "XXX/x264"),
                   (6045, "XXX/UHD"), (6050, "XXX/Pack"), (6060, "XXX/ImageSet"), (6070, "XXX/Other"),
                   (6080, "XXX/SD"), (6090, "XXX/WEB-DL")]),
    7000: ("Books", [(7010, "Books/Mags"), (7020, "Books/EBook"), (7030, "Books/Comics"),
                     (7040, "Books/Technical"), (7050, "Books/Other"), (7060, "Books/Foreign")]),
    8000: ("Other", [(8010, "Other/Misc"), (8020, "Other/Hashed")]),
}
CATEGORY_NAMES: dict[int, str] = {
    **{cid: name for cid, (name, _subs) in STANDARD_CATEGORIES.items()},
    **{sid: sname for _name, subs in STANDARD_CATEGORIES.values() for sid, sname in subs},
}
