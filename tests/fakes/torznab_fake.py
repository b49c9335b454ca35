"""A faithful fake Torznab feed in Jackett's and Prowlarr's flavours, over real HTTP on 127.0.0.1.

Shapes from ../shared/research/prowlarr_mam.md §3 (Jackett `ResultPage.ToXml`, `TorznabCapabilities`,
Prowlarr `NewznabResults.ToXml`, `IndexerCapabilities.GetXDocument`):
- Jackett: `GET /api/v2.0/indexers/<id>/results/torznab/api?apikey=…&t=…`, `rss version="2.0"`,
  `<jackettindexer id=…>`, a bad key answers HTTP **200** with `<error code="100" …/>`, an unsupported
  category HTTP 400 (ReadMeABook#224), download links `/dl/<id>/?jackett_apikey=…&path=…`;
- Prowlarr: `GET /<id>/api?apikey=…&t=…`, `rss version="1.0"`, `<prowlarrindexer id=… type=…>`,
  `torznab:attr name="tag"` for flags, a bad key answers 401, links `/<id>/download?apikey=…&link=…`;
- `t=caps` advertises `search` and `book-search` (supportedParams `q` only by default, like MAM behind either),
  and a category tree; a search type or parameter the caps do not list is answered with error 201/203, so a
  client that sends what was not advertised fails the contract test;
- items carry `torznab:attr` seeders, peers, infohash, downloadvolumefactor, uploadvolumefactor, category, and
  `<size>`, `<grabs>`, `<files>`, `<pubDate>` (RFC 822), `<enclosure>`.

Run by hand: `python -m tests.fakes.torznab_fake --port 8772 --flavour jackett` (prints the feed URL and key).
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from tests.fakes.indexer_http import Answer, FakeIndexerServer, command_line, serve_until_interrupted
from tests.fakes.mam_fake import sample_torrent

XML = "application/xml; charset=utf-8"
DEFAULT_CATEGORIES = [(3000, "Audio", [(3030, "Audio/Audiobook")]), (7000, "Books", [(7020, "Books/EBook")]),
                      (2000, "Movies", [(2040, "Movies/HD")])]


class FakeTorznab(FakeIndexerServer):
    name = "torznab-fake"

    def __init__(self, *, flavour: str = "jackett", apikey: str = "", indexer: str = "myanonamouse",
                 searching: dict[str, str] | None = None, categories=None) -> None:
        super().__init__()
        assert flavour in ("jackett", "prowlarr")
        self.flavour = flavour
        self.apikey = apikey or secrets.token_hex(16)
        self.indexer = indexer if flavour == "jackett" else "7"
        self.searching = searching if searching is not None else {"search": "q", "book-search": "q"}
        self.categories = categories if categories is not None else DEFAULT_CATEGORIES
        self.items: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.magnets: dict[str, str] = {}
        self._ids = itertools.count(1)

    @property
    def api_path(self) -> str:
        if self.flavour == "jackett":
            return f"/api/v2.0/indexers/{self.indexer}/results/torznab/api"
        return f"/{self.indexer}/api"

    @property
    def feed_url(self) -> str:
        return self.base_url + self.api_path

    def add(self, title: str, *, size: int = 734_003_200, seeders: int = 12, peers: int = 15, category=3030,
            info_hash: str = "", freeleech: bool = False, magnet_only: bool = False, torrent: bytes | None = None,
            published: datetime | None = None, grabs: int = 7, files: int = 3) -> dict:
        item_id = str(next(self._ids))
        item = {"id": item_id, "title": title, "size": size, "seeders": seeders, "peers": peers,
                "category": category, "info_hash": info_hash, "freeleech": freeleech, "grabs": grabs, "files": files,
                "published": published or datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "magnet_only": magnet_only}
        self.items.append(item)
        if magnet_only:
            self.magnets[item_id] = f"magnet:?xt=urn:btih:{info_hash or '0' * 40}&dn={quote(title)}"
        else:
            self.files[item_id] = torrent if torrent is not None else sample_torrent(title)
        return item

    # --- HTTP ----------------------------------------------------------------------------------------

    def handle(self, method, path, query, headers) -> Answer:
        params = dict(query)
        if path.startswith(("/dl/", f"/{self.indexer}/download")):
            return self._download(path, params)
        if path != self.api_path:
            return Answer(404, b"Not found", "text/plain")
        if params.get("apikey") != self.apikey:
            if self.flavour == "jackett":
                return self._error(200, 100, "Invalid API Key")
            return Answer(401, b"", "text/plain")
        t = params.get("t", "")
        if t == "caps":
            return Answer(200, self._caps().encode(), XML)
        tag = {"search": "search", "tvsearch": "tv-search", "movie": "movie-search", "music": "music-search",
               "book": "book-search"}.get(t)
        if tag is None:
            return self._error(400, 202, f"No such function ({t})")
        if tag not in self.searching:
            return self._error(400, 203, "Function not available")
        allowed = set(self.searching[tag].split(",")) | {"t", "apikey", "cat", "limit", "offset", "extended"}
        extra = [k for k in params if k not in allowed]
        if extra:
            return self._error(400, 201, f"Incorrect parameter ({extra[0]})")
        cats = [int(c) for c in params.get("cat", "").split(",") if c.strip().isdigit()]
        known = {c for c, _, subs in self.categories for c in [c, *(s for s, _ in subs)]}
        if self.flavour == "jackett" and any(c not in known for c in cats):
            return self._error(400, 201, "Incorrect parameter (cat)")
        return Answer(200, self._feed(params.get("q", ""), cats).encode(), XML)

    def _error(self, status: int, code: int, description: str) -> Answer:
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<error code="{code}" description={quoteattr(description)} />'
        return Answer(status, body.encode(), XML)

    def _caps(self) -> str:
        searching = "".join(f'<{tag} available="yes" supportedParams="{params}" />'
                            for tag, params in self.searching.items())
        cats = "".join(f'<category id="{c}" name="{escape(n)}">'
                       + "".join(f'<subcat id="{s}" name="{escape(sn)}" />' for s, sn in subs) + "</category>"
                       for c, n, subs in self.categories)
        title = "Jackett" if self.flavour == "jackett" else "Prowlarr"
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<caps><server title="{title}" />'
                f'<limits default="100" max="100" /><searching>{searching}</searching>'
                f"<categories>{cats}</categories></caps>")

    def _link(self, item: dict) -> str:
        if self.flavour == "jackett":
            return f"{self.base_url}/dl/{self.indexer}/?jackett_apikey={self.apikey}&path={item['id']}&file=x"
        return f"{self.base_url}/{self.indexer}/download?apikey={self.apikey}&link={item['id']}&file=x"

    def _feed(self, q: str, cats: list[int]) -> str:
        items = []
        for item in self.items:
            if q and not all(w in item["title"].lower() for w in q.lower().split()):
                continue
            parent = item["category"] - item["category"] % 1000
            if cats and item["category"] not in cats and parent not in cats:
                continue
            items.append(self._item(item))
        version = "2.0" if self.flavour == "jackett" else "1.0"
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="{version}" '
                'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:torznab="http://torznab.com/schemas/2015/feed">'
                f'<channel><atom:link href="{self.feed_url}" rel="self" type="application/rss+xml" />'
                f"<title>{self.indexer}</title>{''.join(items)}</channel></rss>")

    def _item(self, item: dict) -> str:
        info = f"https://tracker.example/t/{item['id']}"
        link = self.magnets.get(item["id"]) or self._link(item)
        who = (f'<jackettindexer id="{self.indexer}">MyAnonamouse</jackettindexer>' if self.flavour == "jackett"
               else f'<prowlarrindexer id="{self.indexer}" type="private">MyAnonamouse</prowlarrindexer>')
        attrs = [("category", item["category"]), ("seeders", item["seeders"]), ("peers", item["peers"]),
                 ("downloadvolumefactor", 0 if item["freeleech"] else 1), ("uploadvolumefactor", 1)]
        if item["info_hash"]:
            attrs.append(("infohash", item["info_hash"]))
        if self.flavour == "prowlarr" and item["freeleech"]:
            attrs.append(("tag", "freeleech"))
        return ("<item>" f"<title>{escape(item['title'])}</title><guid>{info}</guid>{who}<type>private</type>"
                f"<comments>{info}</comments><pubDate>{format_datetime(item['published'])}</pubDate>"
                f"<size>{item['size']}</size><files>{item['files']}</files><grabs>{item['grabs']}</grabs>"
                f"<description /><link>{escape(link)}</link><category>{item['category']}</category>"
                f'<enclosure url={quoteattr(link)} length="{item["size"]}" type="application/x-bittorrent" />'
                + "".join(f'<torznab:attr name="{n}" value="{v}" />' for n, v in attrs) + "</item>")

    def _download(self, path: str, params: dict) -> Answer:
        key = params.get("jackett_apikey") or params.get("apikey")
        if key != self.apikey:
            return Answer(401, b"", "text/plain")
        item_id = params.get("path") or params.get("link") or ""
        if item_id in self.magnets:
            return Answer(302, b"", "text/plain", (("Location", self.magnets[item_id]),))
        if item_id not in self.files:
            return Answer(404, b"", "text/plain")
        return Answer(200, self.files[item_id], "application/x-bittorrent")


def main(argv: list[str] | None = None) -> None:
    args = command_line("Run a fake Torznab feed (Jackett or Prowlarr flavour).", 8772, argv,
                        lambda parser: parser.add_argument("--flavour", choices=["jackett", "prowlarr"],
                                                           default="jackett"))
    fake = FakeTorznab(flavour=args.flavour)
    fake.add("Project Hail Mary by Andy Weir [ENG / M4B]", freeleech=True)
    fake.add("Dune.Part.Two.2024.1080p.WEB-DL.DDP5.1.x264", category=2040, size=9_000_000_000, seeders=300)
    fake.serve(args.port, args.host)
    serve_until_interrupted(fake, f"Fake Torznab ({args.flavour}) feed: {fake.feed_url} — API key: {fake.apikey}")


if __name__ == "__main__":
    main()
