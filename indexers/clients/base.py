"""The interface every indexer client implements, the one release shape they return, one error type.

A client talks to one indexer for one search (built per call by `indexers.clients.build`, so it holds no
state between searches except what it hands back: `updated_secrets`, e.g. MyAnonamouse's rotated cookie,
which the service persists). Parsing is defensive: trackers send numbers as strings, JSON inside JSON, HTML
where XML was promised; a malformed item is skipped, a malformed answer is one ClientError.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET
from django.conf import settings

from indexers import http
from indexers.errors import ClientError

SEARCH_KINDS = ("search", "tvsearch", "movie", "music", "book")
HASH_RE = re.compile(r"[0-9a-fA-F]{40}")
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*([kmgtp]?i?b?|bytes?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "byte": 1, "bytes": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
          "p": 1024**5, "pb": 1000**5, "pib": 1024**5}


@dataclass
class Release:
    """One result, normalized. Sizes in bytes, dates aware UTC, categories Newznab ids."""

    guid: str
    title: str
    size: int = 0
    seeders: int = 0
    leechers: int = 0
    grabs: int = 0
    files: int | None = None
    published_at: datetime | None = None
    categories: list[int] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    info_hash: str = ""
    info_url: str = ""
    download_url: str = ""  # upstream link: may hold a passkey; fetched server-side only
    magnet: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Capabilities:
    """What an indexer can be asked: search types with their parameters, and its categories."""

    searching: dict[str, list[str]] = field(default_factory=lambda: {"search": ["q"]})
    categories: list[dict] = field(default_factory=list)  # [{"id", "name", "subcats": [{"id", "name"}]}]
    limit_max: int = 100

    def category_ids(self) -> set[int]:
        ids = set()
        for cat in self.categories:
            ids.add(cat["id"])
            ids.update(sub["id"] for sub in cat.get("subcats", []))
        return ids

    def as_dict(self) -> dict:
        return {"searching": self.searching, "categories": self.categories, "limit_max": self.limit_max}

    @classmethod
    def from_dict(cls, data: dict) -> Capabilities:
        if not data:
            return cls()
        return cls(searching=data.get("searching") or {"search": ["q"]}, categories=data.get("categories") or [],
                   limit_max=int(data.get("limit_max") or 100))


@dataclass
class Query:
    """A search: free text plus the structured fields Prowlarr's tokens carry ({author:…}{title:…})."""

    text: str = ""
    kind: str = "search"
    categories: list[int] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # author, title, season, ep, imdbid, year, …
    limit: int = 100
    offset: int = 0

    def words(self) -> str:
        """Everything as one free-text query (for indexers without structured search)."""
        parts = [self.text, *(v for k, v in self.fields.items() if k in ("title", "author", "artist", "album"))]
        return " ".join(p for p in parts if p).strip()


class IndexerClient(ABC):
    kind: str = ""
    default_url: str = ""
    default_privacy: str = "public"
    default_interval: float = 1.0
    secret_names: tuple[str, ...] = ()

    def __init__(self, *, url: str, secrets: dict[str, str], deadline: float, allow_internal: bool,
                 account_status: dict | None = None) -> None:
        self.url = (url or self.default_url).rstrip("/")
        self.secrets = secrets
        self.account_status = account_status or {}
        self.deadline = deadline
        self.allow_internal = allow_internal
        self.updated_secrets: dict[str, str] | None = None
        self.calls = 0

    def get(self, url: str, **kwargs):
        self.calls += 1
        return http.get(url, deadline=self.deadline, allow_internal=self.allow_internal, **kwargs)

    def capabilities(self) -> Capabilities:
        """Fixed for most kinds; Torznab asks the feed (t=caps)."""
        return self.static_capabilities()

    @classmethod
    def static_capabilities(cls) -> Capabilities:
        return Capabilities()

    @abstractmethod
    def search(self, query: Query, caps: Capabilities) -> list[Release]: ...

    def download(self, release: Release) -> tuple[bytes, str]:
        """The .torrent bytes (or a magnet) of a release, fetched with this indexer's credentials."""
        if not release.download_url:
            if release.magnet:
                return b"", release.magnet
            raise ClientError("This result has no download link.", code="no_link", permanent=True)
        response = self.get(release.download_url, headers=self.download_headers(),
                            max_bytes=_torrent_limit())
        if response.magnet:
            return b"", response.magnet
        check_status(response, "download")
        return torrent_body(response.body), ""

    def download_headers(self) -> dict[str, str]:
        return {"Accept": "application/x-bittorrent, */*"}

    def account(self) -> dict:
        """What the tracker says about the account (ratio, class…); {} where there is nothing to say."""
        return {}


def _torrent_limit() -> int:
    return settings.TORRENT_MAX_BYTES


def check_status(response, what: str) -> None:
    if response.status in (401, 403):
        raise ClientError(f"The indexer refused the credentials (HTTP {response.status}).", code="auth_failed",
                          permanent=True)
    if response.status == 429:
        raise ClientError("The indexer says too many requests (HTTP 429).", code="rate_limited")
    if response.status != 200:
        raise ClientError(f"The indexer answered HTTP {response.status} to the {what}.", code="http_error")


def torrent_body(body: bytes) -> bytes:
    if not body.startswith(b"d"):  # bencoded dictionary; an HTML login page is not a torrent
        raise ClientError("The indexer did not return a .torrent file (a login page or an error instead).",
                          code="not_a_torrent")
    return body


def parse_json(body: bytes) -> Any:
    try:
        # Lenient about the encoding (a tracker's Latin-1 byte becomes U+FFFD), strict about the syntax.
        return json.loads(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as exc:
        raise ClientError("The indexer's answer is not JSON (an HTML page or an error?).", code="bad_response") from exc


def parse_xml(body: bytes):
    """Parse with defusedxml (no entity expansion, no external entities, no DTD): an XML bomb is refused."""
    try:
        return SafeET.fromstring(body, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise ClientError("The indexer's answer uses forbidden XML (entities or a DTD).", code="bad_response") from exc
    except (ET.ParseError, ValueError, UnicodeError, RecursionError) as exc:
        raise ClientError("The indexer's answer is not valid XML (an HTML page or an error?).",
                          code="bad_response") from exc


def to_int(value: Any, default: int = 0) -> int:
    """Ints from ints, numeric strings, floats and booleans; anything else is the default. Never negative."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0) if value == value and abs(value) < 2**62 else default
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            return max(int(float(text)), 0) if text and len(text) < 30 else default
        except ValueError:
            return default
    return default


def to_size(value: Any) -> int:
    """Bytes from an int, a numeric string or a human size ("5.89 GiB", "476.84 MiB", "1.2 GB")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return to_int(value)
    if not isinstance(value, str):
        return 0
    match = _SIZE_RE.match(value)
    if not match:
        return 0
    number = float(match.group(1).replace(",", "."))
    unit = (match.group(2) or "").lower()
    return int(number * _UNITS.get(unit, _UNITS.get(unit.rstrip("b"), 1)))


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y")
    return bool(to_int(value)) if not isinstance(value, bool) else value


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def from_unix(value: Any) -> datetime | None:
    seconds = to_int(value, -1)
    if seconds <= 0 or seconds > 2**33:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def info_hash(value: Any) -> str:
    text = str(value or "").strip()
    return text.lower() if HASH_RE.fullmatch(text) else ""


def clean_text(value: Any, limit: int = 500) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split())[:limit]


def monotonic() -> float:
    return time.monotonic()
