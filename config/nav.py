"""The sidebar's entries: a small registry that apps contribute to, and the context processor that renders it.

An app adds its page in its `AppConfig.ready()`:

    from config import nav
    nav.register(nav.NavEntry(key="search", label="Search", url_name="indexers:search", icon="search", order=20))

An entry is shown only when its URL resolves (and its `visible` check passes), so a page that does not exist
yet, or is switched off, never becomes a dead link. `key` matches the `nav` a view puts in its context to
mark the current page. The core entries below belong to apps that exist today.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavEntry:
    key: str
    label: str
    url_name: str
    icon: str  # a name known to templates/partials/icon.html
    order: int = 50
    section: str = "main"  # "main", "account" or "operators"
    visible: Callable[[HttpRequest], bool] | None = None


_entries: dict[str, NavEntry] = {}


def register(entry: NavEntry) -> NavEntry:
    """Add (or replace, by key) an entry; returns it so tests can unregister it."""
    _entries[entry.key] = entry
    return entry


def unregister(key: str) -> None:
    _entries.pop(key, None)


def entries_for(request: HttpRequest) -> list[dict]:
    """The entries this request may see, in order, each with its resolved URL."""
    shown = []
    for entry in sorted(_entries.values(), key=lambda e: (e.order, e.label)):
        if entry.visible is not None and not entry.visible(request):
            continue
        try:
            url = reverse(entry.url_name)
        except NoReverseMatch:
            continue  # the page is not built (or not mounted) yet: no dead link
        shown.append({"key": entry.key, "label": entry.label, "url": url, "icon": entry.icon,
                      "section": entry.section})
    return shown


def sidebar(request: HttpRequest) -> dict:
    """Context processor: the sidebar's entries (signed-in pages only). The plan badge beside them comes from
    billing.context_processors (config sits below every app and imports none)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    entries = entries_for(request)
    return {
        "nav_main": [e for e in entries if e["section"] == "main"],
        "nav_account": [e for e in entries if e["section"] == "account"],
        "nav_operators": [e for e in entries if e["section"] == "operators"],
    }


def _is_staff(request: HttpRequest) -> bool:
    return bool(request.user.is_staff)


def _seedr_on(request: HttpRequest) -> bool:
    return bool(settings.SEEDR_ENABLED)


for _entry in (
    NavEntry("dashboard", "Downloads", "downloads:dashboard", "download", order=10),
    NavEntry("search", "Search", "indexers:search", "search", order=20),
    NavEntry("audiobooks", "Audiobooks", "audiobooks:list", "headphones", order=40),
    NavEntry("indexers", "Indexers", "indexers:list", "book", order=65),
    NavEntry("seedr", "Seedr", "seedr:panel", "cloud", order=50, visible=_seedr_on),
    NavEntry("servers", "Servers", "servers:list", "server", order=60),
    NavEntry("usage", "Usage", "billing:usage", "chart", order=70),
    NavEntry("plans", "Plans", "billing:plans", "star", order=10, section="account"),
    NavEntry("failover", "Fail-over", "downloads:failover", "server", order=15, section="account"),
    NavEntry("api_keys", "API keys", "accounts:api_keys", "key", order=20, section="account"),
    NavEntry("qbittorrent", "qBittorrent API", "qbittorrent:settings", "settings", order=25, section="account"),
    NavEntry("api_docs", "API docs", "api-docs", "book", order=30, section="account"),
    NavEntry("admin", "Admin", "admin:index", "shield", order=10, section="operators", visible=_is_staff),
):
    register(_entry)
