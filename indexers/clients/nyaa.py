"""Nyaa (anime and Asian media), through its RSS search `GET /?page=rss&q=…&c=0_0&f=0`.

Nyaa's RSS carries its own namespace (https://nyaa.si/xmlns/nyaa): seeders, leechers, downloads, infoHash,
categoryId ("1_2"), size ("1.2 GiB"), trusted, remake. Nyaa categories map to Newznab ids as Prowlarr's
definition does; trusted and remake become flags.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from urllib.parse import quote

from indexers.clients.base import (
    Capabilities,
    ClientError,
    IndexerClient,
    Query,
    Release,
    check_status,
    clean_text,
    info_hash,
    parse_xml,
    to_bool,
    to_int,
    to_size,
    utc,
)

NYAA_NS = "https://nyaa.si/xmlns/nyaa"
CATEGORIES = {"1": 5070, "2": 3000, "3": 7000, "4": 2000, "5": 8000, "6": 4000}
TRACKERS = ("http://nyaa.tracker.wf:7777/announce", "udp://open.stealth.si:80/announce")


class NyaaClient(IndexerClient):
    kind = "nyaa"
    default_url = "https://nyaa.si"
    default_interval = 1.0

    @classmethod
    def static_capabilities(cls) -> Capabilities:
        return Capabilities(searching={"search": ["q"], "tvsearch": ["q"]}, categories=[
            {"id": 5000, "name": "TV", "subcats": [{"id": 5070, "name": "TV/Anime"}]},
            {"id": 3000, "name": "Audio", "subcats": []}, {"id": 7000, "name": "Books", "subcats": []},
            {"id": 2000, "name": "Movies", "subcats": []}, {"id": 8000, "name": "Other", "subcats": []},
            {"id": 4000, "name": "PC", "subcats": []}], limit_max=75)

    def search(self, query: Query, caps: Capabilities) -> list[Release]:
        params = [("page", "rss"), ("q", query.words()), ("c", "0_0"), ("f", "0")]
        response = self.get(self.url + "/", params=params, headers={"Accept": "application/rss+xml"})
        check_status(response, "search")
        root = parse_xml(response.body)
        channel = next((e for e in root.iter() if e.tag == "channel"), None)
        if channel is None:
            raise ClientError("Nyaa's answer is not an RSS channel.", code="bad_response")
        return [r for item in channel if item.tag == "item" and (r := parse_item(item))]


def parse_item(item) -> Release | None:
    plain = {child.tag: (child.text or "") for child in item if not child.tag.startswith("{")}
    nyaa = {child.tag.split("}", 1)[1]: (child.text or "") for child in item if child.tag.startswith(f"{{{NYAA_NS}}}")}
    title = clean_text(plain.get("title"), 500)
    guid = clean_text(plain.get("guid"), 1000)
    if not title or not guid:
        return None
    digest = info_hash(nyaa.get("infoHash"))
    category = CATEGORIES.get(clean_text(nyaa.get("categoryId"), 10).split("_", 1)[0], 8000)
    flags = [f for f, on in (("trusted", to_bool(nyaa.get("trusted"))), ("remake", to_bool(nyaa.get("remake"))))
             if on]
    magnet = (f"magnet:?xt=urn:btih:{digest}&dn={quote(title)}" + "".join(f"&tr={quote(t, safe='')}"
                                                                           for t in TRACKERS)) if digest else ""
    return Release(
        guid=guid, title=title, size=to_size(nyaa.get("size")), seeders=to_int(nyaa.get("seeders")),
        leechers=to_int(nyaa.get("leechers")), grabs=to_int(nyaa.get("downloads")),
        published_at=_date(plain.get("pubDate")), categories=[category], flags=flags, info_hash=digest,
        info_url=guid if guid.startswith(("http://", "https://")) else "",
        download_url=plain.get("link", "").strip() if plain.get("link", "").startswith(("http://", "https://")) else "",
        magnet=magnet, extra={"nyaa_category": clean_text(nyaa.get("category"), 60)})


def _date(value):
    try:
        return utc(parsedate_to_datetime(value.strip())) if value else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
