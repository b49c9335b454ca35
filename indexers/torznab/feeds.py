"""Torznab documents from Flotilla's rows: `t=caps`, the RSS result feed, and Newznab's error element.

Written as Prowlarr and Jackett write them and as Sonarr's TorznabRssParser reads them: every `torznab:attr`
name once per item (Sonarr takes `SingleOrDefault`), except `category` and `tag`; the enclosure typed
`application/x-bittorrent` (Sonarr refuses any other); `pubDate` in RFC 822; sizes in bytes. Links are
Flotilla's signed download proxy, never the tracker's URL; info-hashes and magnets only for public indexers.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from email.utils import format_datetime

from django.http import HttpRequest
from django.utils import timezone

from indexers.clients import Capabilities
from indexers.models import SearchResult
from indexers.prowlarr.common import CATEGORY_NAMES, download_url

TORZNAB_NS = "http://torznab.com/schemas/2015/feed"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAPS_TAGS = {"search": "search", "tvsearch": "tv-search", "movie": "movie-search", "music": "music-search",
             "book": "book-search"}
# Control characters XML 1.0 cannot carry (Prowlarr strips the same).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff\ud800-\udfff]")
ET.register_namespace("torznab", TORZNAB_NS)
ET.register_namespace("atom", ATOM_NS)


def clean(value) -> str:
    return _INVALID_XML.sub("", "" if value is None else str(value))


def render(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def error(code: int, description: str) -> bytes:
    return render(ET.Element("error", {"code": str(code), "description": clean(description)[:500]}))


def caps(capabilities: Capabilities) -> bytes:
    root = ET.Element("caps")
    ET.SubElement(root, "server", {"title": "Flotilla"})
    limit = max(1, capabilities.limit_max)
    ET.SubElement(root, "limits", {"default": str(min(100, limit)), "max": str(limit)})
    searching = ET.SubElement(root, "searching")
    for kind, tag in CAPS_TAGS.items():
        params = capabilities.searching.get(kind)
        ET.SubElement(searching, tag, {"available": "yes" if params else "no",
                                       "supportedParams": ",".join(params or ["q"])})
        if kind == "music":  # Prowlarr writes both names for music
            ET.SubElement(searching, "audio-search", {"available": "yes" if params else "no",
                                                      "supportedParams": ",".join(params or ["q"])})
    cats = ET.SubElement(root, "categories")
    for cat in capabilities.categories:
        element = ET.SubElement(cats, "category", {"id": str(cat["id"]), "name": _name(cat)})
        for sub in cat.get("subcats", []):
            ET.SubElement(element, "subcat", {"id": str(sub["id"]), "name": _name(sub)})
    return render(root)


def _name(cat: dict) -> str:
    return clean(cat.get("name") or CATEGORY_NAMES.get(cat["id"], ""))


def merge_caps(all_caps: list[Capabilities]) -> Capabilities:
    """The feed across indexers: a search type any of them has, every parameter any of them takes (Flotilla
    asks each indexer only what it advertises), the union of categories."""
    searching: dict[str, list[str]] = {"search": ["q"]}
    categories: dict[int, dict] = {}
    for one in all_caps:
        for kind, params in one.searching.items():
            searching[kind] = sorted(set(searching.get(kind, [])) | set(params), key=lambda p: (p != "q", p))
        for cat in one.categories:
            merged = categories.setdefault(cat["id"], {"id": cat["id"], "name": cat.get("name"), "subcats": []})
            known = {s["id"] for s in merged["subcats"]}
            merged["subcats"].extend(s for s in cat.get("subcats", []) if s["id"] not in known)
    return Capabilities(searching=searching, categories=sorted(categories.values(), key=lambda c: c["id"]),
                        limit_max=max((c.limit_max for c in all_caps), default=100))


def _attr(item: ET.Element, name: str, value) -> None:
    if value is not None and value != "":
        ET.SubElement(item, f"{{{TORZNAB_NS}}}attr", {"name": name, "value": clean(value)})


def _factors(flags: list[str]) -> tuple[str, str]:
    down = "0" if "freeleech" in flags else "0.5" if "halfleech" in flags else "1"
    return down, "2" if "doubleupload" in flags else "1"


def _item(channel: ET.Element, request: HttpRequest, prefix: str, result: SearchResult, now) -> None:
    public = result.indexer.privacy == "public"
    magnet = result.magnet if public and result.magnet.startswith("magnet:?") else ""
    link = download_url(request, prefix, result) if result.download_url or not magnet else magnet
    item = ET.SubElement(channel, "item")
    ET.SubElement(item, "title").text = clean(result.title)
    ET.SubElement(item, "guid").text = clean(result.guid)
    ET.SubElement(item, "jackettindexer", {"id": str(result.indexer_id)}).text = clean(result.indexer.name)
    if result.info_url:
        ET.SubElement(item, "comments").text = clean(result.info_url)
    ET.SubElement(item, "pubDate").text = format_datetime(result.published_at or now)
    ET.SubElement(item, "size").text = str(int(result.size))
    ET.SubElement(item, "link").text = link
    for cid in result.categories or []:
        ET.SubElement(item, "category").text = str(int(cid))
    ET.SubElement(item, "enclosure", {"url": link, "length": str(int(result.size)), "type": "application/x-bittorrent"})
    for cid in result.categories or []:
        _attr(item, "category", int(cid))
    for flag in result.flags or []:
        _attr(item, "tag", flag)
    _attr(item, "seeders", int(result.seeders))
    _attr(item, "peers", int(result.seeders) + int(result.leechers))
    _attr(item, "size", int(result.size))
    _attr(item, "files", result.files)
    _attr(item, "grabs", int(result.grabs))
    if public:
        _attr(item, "infohash", result.info_hash)
        _attr(item, "magneturl", magnet)
    authors = (result.extra or {}).get("authors")
    if isinstance(authors, list) and authors:
        _attr(item, "author", ", ".join(str(a) for a in authors[:5]))
    _attr(item, "booktitle", (result.extra or {}).get("book_title"))
    down, up = _factors(result.flags or [])
    _attr(item, "downloadvolumefactor", down)
    _attr(item, "uploadvolumefactor", up)


def results(request: HttpRequest, prefix: str, title: str, rows: list[SearchResult]) -> bytes:
    root = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(root, "channel")
    ET.SubElement(channel, f"{{{ATOM_NS}}}link", {"href": request.build_absolute_uri(), "rel": "self",
                                                   "type": "application/rss+xml"})
    ET.SubElement(channel, "title").text = clean(title)
    ET.SubElement(channel, "description").text = "Flotilla"
    now = timezone.now()
    for row in rows:
        _item(channel, request, prefix, row, now)
    return render(root)
