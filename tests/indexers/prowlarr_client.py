"""What AudioBookRequest (markbeep/AudioBookRequest, app/internal/prowlarr/prowlarr.py) does with a "Prowlarr",
for the tests: its exact requests, and validators as strict as its pydantic models (pydantic is not a
dependency here, so the rules are written out; research/prowlarr_mam.md §1.4 lists them).

- `list[_ProwlarrTorrentResult | _ProwlarrUsenetResult]`, validated at once: one bad item and ABR shows nothing;
- required: guid, indexerId, indexer, title, size (an int: 1.5 fails), publishDate (`datetime.fromisoformat`,
  and aware: ABR subtracts dates of different results); protocol exactly "torrent" or "usenet";
- optional but never null: indexerFlags (list[str]), seeders/leechers (torrent), grabs (usenet);
- optional, str or null: infoUrl, downloadUrl, magnetUrl;
- indexers: `list[Indexer]` with id (int), name (str), enable (bool), privacy (str).
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from urllib.parse import urlencode

USER_AGENT = "ABR/1.10.4 (+https://github.com/markbeep/AudioBookRequest)"


class Invalid(AssertionError):
    pass


def _int(item: dict, name: str, *, required: bool) -> None:
    if name not in item:
        if required:
            raise Invalid(f"{name} is required")
        return
    value = item[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an int, not {value!r}")


def _str(item: dict, name: str, *, required: bool, nullable: bool = False) -> None:
    if name not in item:
        if required:
            raise Invalid(f"{name} is required")
        return
    value = item[name]
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string, not {value!r}")


def validate_release(item) -> datetime:
    if not isinstance(item, dict):
        raise Invalid("a release must be an object")
    if item.get("protocol") not in ("torrent", "usenet"):
        raise Invalid(f"protocol {item.get('protocol')!r} is neither torrent nor usenet")
    for name in ("guid", "indexer", "title", "publishDate"):
        _str(item, name, required=True)
    for name in ("infoUrl", "downloadUrl", "magnetUrl"):
        _str(item, name, required=False, nullable=True)
    _int(item, "indexerId", required=True)
    _int(item, "size", required=True)
    flags = item.get("indexerFlags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise Invalid(f"indexerFlags must be a list of strings, not {flags!r}")
    for name in ("seeders", "leechers") if item["protocol"] == "torrent" else ("grabs",):
        _int(item, name, required=False)
    published = datetime.fromisoformat(item["publishDate"])
    if published.tzinfo is None:
        raise Invalid("publishDate is naive: ABR cannot compare it with aware dates")
    return published


def validate_search(body) -> list[dict]:
    if not isinstance(body, list):
        raise Invalid("the search answer must be a JSON array")
    dates = [validate_release(item) for item in body]
    for a in dates:  # ABR's _compare_age subtracts them pairwise
        for b in dates[:3]:
            _ = a - b
    return body


def validate_indexers(body) -> list[dict]:
    if not isinstance(body, list):
        raise Invalid("the indexer answer must be a JSON array")
    for item in body:
        if not isinstance(item, dict):
            raise Invalid("an indexer must be an object")
        _int(item, "id", required=True)
        _str(item, "name", required=True)
        _str(item, "privacy", required=True)
        if not isinstance(item.get("enable"), bool):
            raise Invalid(f"enable must be a bool, not {item.get('enable')!r}")
    return body


def search_url(base_url: str, query: str, categories: list[int], indexer_ids: list[int] | None) -> str:
    """query_prowlarr's URL, built exactly as ABR builds it."""
    params: dict = {"query": query, "type": "search", "limit": 100, "offset": 0}
    if categories:
        params["categories"] = categories
    if indexer_ids is not None:
        params["indexerIds"] = indexer_ids
    return posixpath.join(base_url, f"api/v1/search?{urlencode(params, doseq=True)}")


def key_headers(api_key: str, *, accept_json: bool = False) -> dict[str, str]:
    headers = {"X-Api-Key": api_key, "User-Agent": USER_AGENT}
    if accept_json:
        headers["Accept"] = "application/json"
    return headers
