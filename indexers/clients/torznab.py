"""Torznab feeds (Jackett, Prowlarr, any Torznab/Newznab torrent feed).

`t=caps` first (cached on the indexer), then only what the feed advertises: a search type it marks
available (else the plain `search` with the structured fields folded into `q`), only the parameters in its
`supportedParams`, and only categories it lists (Jackett answers 400 to others, ReadMeABook#224; sending
unsupported structured params makes Prowlarr skip the indexer, shelfarr#402).

Errors: `<error code=… description=…/>` may come with HTTP 200 (Jackett) or 4xx (Prowlarr); codes 100-199
are credentials (permanent), "Request limit reached" / 429 is a rate limit. Items: `torznab:attr` (or
`newznab:attr`) seeders, peers, leechers, infohash, magneturl, size, files, grabs, downloadvolumefactor (0 →
freeleech), uploadvolumefactor, tag; `rss` version 1.0 (Prowlarr) or 2.0 (Jackett) alike.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from indexers.clients.base import (
    SEARCH_KINDS,
    Capabilities,
    ClientError,
    IndexerClient,
    Query,
    Release,
    check_status,
    clean_text,
    info_hash,
    parse_xml,
    to_int,
    utc,
)

TORZNAB_NS = "http://torznab.com/schemas/2015/feed"
NEWZNAB_NS = "http://www.newznab.com/DTD/2010/feeds/attributes/"
CAPS_TAGS = {"search": "search", "tv-search": "tvsearch", "movie-search": "movie", "music-search": "music",
             "audio-search": "music", "book-search": "book"}
PARAM_NAMES = {"q", "season", "ep", "imdbid", "tvdbid", "tmdbid", "rid", "tvmazeid", "year", "genre", "artist",
               "album", "label", "track", "title", "author", "publisher"}


class TorznabClient(IndexerClient):
    kind = "torznab"
    default_url = ""
    default_privacy = "private"
    default_interval = 0.5
    secret_names = ("apikey",)

    def _params(self, **params) -> list[tuple[str, str]]:
        items = [(k, str(v)) for k, v in params.items() if v not in (None, "")]
        if self.secrets.get("apikey"):
            items.append(("apikey", self.secrets["apikey"]))
        return items

    def _fetch(self, params: list[tuple[str, str]]):
        response = self.get(self.url, params=params, headers={"Accept": "application/rss+xml, application/xml"})
        try:
            root = parse_xml(response.body) if response.body.strip() else None
        except ClientError:
            check_status(response, "search")  # a 500 with an HTML page is an HTTP error first
            raise
        if root is not None and _local(root.tag) == "error":
            raise _feed_error(root, response.status)
        check_status(response, "search")
        if root is None:
            raise ClientError("The feed answered an empty body.", code="bad_response")
        return root

    def capabilities(self) -> Capabilities:
        root = self._fetch(self._params(t="caps"))
        if _local(root.tag) != "caps":
            raise ClientError("The feed's t=caps answer is not a capabilities document.", code="bad_response")
        searching: dict[str, list[str]] = {}
        for element in root.iter():
            kind = CAPS_TAGS.get(_local(element.tag))
            if kind and element.get("available", "yes").lower() == "yes" and kind not in searching:
                params = [p.strip() for p in (element.get("supportedParams") or "q").split(",")]
                searching[kind] = [p for p in params if p in PARAM_NAMES] or ["q"]
        categories = []
        for cat in root.iter():
            if _local(cat.tag) != "category" or not to_int(cat.get("id")):
                continue
            subcats = [{"id": to_int(s.get("id")), "name": clean_text(s.get("name"), 100)}
                       for s in cat if _local(s.tag) == "subcat" and to_int(s.get("id"))]
            categories.append({"id": to_int(cat.get("id")), "name": clean_text(cat.get("name"), 100),
                               "subcats": subcats})
        limits = next((e for e in root.iter() if _local(e.tag) == "limits"), None)
        limit_max = to_int(limits.get("max"), 100) if limits is not None else 100
        return Capabilities(searching=searching or {"search": ["q"]}, categories=categories,
                            limit_max=max(1, min(limit_max, 1000)))

    def search(self, query: Query, caps: Capabilities) -> list[Release]:
        kind = query.kind if query.kind in SEARCH_KINDS and query.kind in caps.searching else "search"
        if kind not in caps.searching:
            return []
        supported = set(caps.searching[kind])
        params = {"t": kind, "extended": "1", "limit": min(query.limit, caps.limit_max), "offset": query.offset}
        structured = {k: v for k, v in query.fields.items() if k in supported}
        text = query.text if kind != "search" else query.words()
        if kind != "search":  # fields the feed cannot take go back into the free text
            text = " ".join([query.text, *(v for k, v in query.fields.items() if k not in supported and
                                           k in ("title", "author", "artist", "album"))]).strip()
        if "q" in supported and text:
            params["q"] = text
        params.update(structured)
        if query.categories:
            advertised = caps.category_ids()
            wanted = [c for c in query.categories if not advertised or c in advertised]
            if not wanted:
                return []  # the feed has none of these categories: asking would be a 400 at Jackett
            params["cat"] = ",".join(str(c) for c in wanted)
        root = self._fetch(self._params(**params))
        channel = next((e for e in root.iter() if _local(e.tag) == "channel"), None)
        if channel is None:
            raise ClientError("The feed's answer is not an RSS channel.", code="bad_response")
        return [r for item in channel if _local(item.tag) == "item" and (r := parse_item(item))]

    def download_headers(self) -> dict[str, str]:
        return {"Accept": "application/x-bittorrent, */*"}


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _feed_error(root, status: int) -> ClientError:
    code = to_int(root.get("code"))
    description = clean_text(root.get("description"), 200)
    if 100 <= code < 200:
        return ClientError(f"The feed refused the API key ({code}: {description}).", code="auth_failed",
                           permanent=True)
    if status == 429 or code in (429, 500) or "limit" in description.lower():
        return ClientError(f"The feed says: {description or 'request limit reached'}.", code="rate_limited")
    return ClientError(f"The feed says: {description or code}.", code="indexer_error")


def parse_item(item) -> Release | None:
    fields: dict[str, str] = {}
    attrs: dict[str, list[str]] = {}
    enclosure = None
    for child in item:
        name = _local(child.tag)
        if name == "attr" and child.tag.startswith(("{" + TORZNAB_NS, "{" + NEWZNAB_NS)):
            attrs.setdefault((child.get("name") or "").lower(), []).append(child.get("value") or "")
        elif name == "enclosure":
            enclosure = child
        elif name == "category":
            attrs.setdefault("category", []).append(child.text or "")
        elif name not in fields:
            fields[name] = child.text or ""
    title = clean_text(fields.get("title"), 500)
    guid = clean_text(fields.get("guid") or fields.get("comments") or fields.get("link"), 2000)
    if not title or not guid:
        return None
    first = {k: v[0] for k, v in attrs.items() if v}
    link = (fields.get("link") or "").strip()
    if enclosure is not None and enclosure.get("url"):
        link = enclosure.get("url", "").strip()
    magnet = first.get("magneturl", "")
    if link.startswith("magnet:"):
        magnet, link = magnet or link, ""
    seeders = to_int(first.get("seeders"))
    peers = to_int(first.get("peers"))
    leechers = to_int(first.get("leechers"), max(peers - seeders, 0))
    size = to_int(fields.get("size")) or to_int(first.get("size")) or to_int(
        enclosure.get("length") if enclosure is not None else 0)
    flags = [clean_text(t, 40).lower() for t in attrs.get("tag", []) if t][:10]
    dvf, uvf = first.get("downloadvolumefactor"), first.get("uploadvolumefactor")
    if dvf is not None and _factor(dvf) == 0.0 and "freeleech" not in flags:
        flags.insert(0, "freeleech")
    elif dvf is not None and _factor(dvf) == 0.5 and "halfleech" not in flags:
        flags.append("halfleech")
    if uvf is not None and _factor(uvf) == 2.0 and "doubleupload" not in flags:
        flags.append("doubleupload")
    categories = sorted({c for c in (to_int(v) for v in attrs.get("category", [])) if c})
    return Release(
        guid=guid, title=title, size=size, seeders=seeders, leechers=leechers,
        grabs=to_int(fields.get("grabs")) or to_int(first.get("grabs")),
        files=to_int(fields.get("files")) or to_int(first.get("files")) or None,
        published_at=_date(fields.get("pubDate") or first.get("publishdate")), categories=categories,
        flags=flags, info_hash=info_hash(first.get("infohash")),
        info_url=_http(fields.get("comments")) or _http(guid), download_url=_http(link),
        magnet=magnet if magnet.startswith("magnet:?") else "",
        extra={k: clean_text(first[k], 200) for k in ("author", "booktitle", "imdbid", "tvdbid", "year")
               if first.get(k)})


def _factor(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value):
    if not value:
        return None
    try:
        return utc(parsedate_to_datetime(value.strip()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _http(value) -> str:
    text = (value or "").strip()
    return text[:2000] if text.lower().startswith(("http://", "https://")) else ""
