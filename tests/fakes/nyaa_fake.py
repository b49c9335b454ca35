"""A faithful fake of Nyaa's RSS search (`GET /?page=rss&q=…&c=0_0&f=0`), over real HTTP on 127.0.0.1.

Nyaa's feed: RSS 2.0 with the `nyaa` namespace (https://nyaa.si/xmlns/nyaa) carrying seeders, leechers,
downloads, infoHash, categoryId ("1_2"), category, size ("1.2 GiB"), comments, trusted, remake; `<link>` is
the .torrent (`/download/<id>.torrent`), `<guid isPermaLink="true">` the view page.

Run by hand: `python -m tests.fakes.nyaa_fake --port 8774`.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from tests.fakes.indexer_http import Answer, FakeIndexerServer, command_line, serve_until_interrupted
from tests.fakes.mam_fake import sample_torrent


class FakeNyaa(FakeIndexerServer):
    name = "nyaa-fake"

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict] = []
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(1800001)

    def add(self, title: str, *, category="1_2", size="1.4 GiB", seeders=120, leechers=8, trusted=True) -> dict:
        item_id = str(next(self._ids))
        item = {"id": item_id, "title": title, "category": category, "size": size, "seeders": seeders,
                "leechers": leechers, "trusted": trusted,
                "hash": hashlib.sha1(title.encode()).hexdigest()}
        self.items.append(item)
        self.files[item_id] = sample_torrent(title)
        return item

    def handle(self, method, path, query, headers) -> Answer:
        params = dict(query)
        if path.startswith("/download/") and path.endswith(".torrent"):
            item_id = path[len("/download/"):-len(".torrent")]
            if item_id not in self.files:
                return Answer(404, b"", "text/html")
            return Answer(200, self.files[item_id], "application/x-bittorrent")
        if path != "/" or params.get("page") != "rss":
            return Answer(200, b"<html><body>Nyaa</body></html>", "text/html")
        q = params.get("q", "").lower()
        items = "".join(self._item(i) for i in self.items if all(w in i["title"].lower() for w in q.split()))
        body = ('<?xml version="1.0" encoding="utf-8"?>\n<rss xmlns:atom="http://www.w3.org/2005/Atom" '
                'xmlns:nyaa="https://nyaa.si/xmlns/nyaa" version="2.0"><channel><title>Nyaa - Torrent File RSS'
                f"</title><description>RSS Feed</description><link>{self.base_url}/</link>{items}</channel></rss>")
        return Answer(200, body.encode(), "application/xml")

    def _item(self, item: dict) -> str:
        date = format_datetime(datetime(2024, 3, 1, 12, 0, tzinfo=UTC))
        return (f"<item><title>{escape(item['title'])}</title>"
                f"<link>{self.base_url}/download/{item['id']}.torrent</link>"
                f'<guid isPermaLink="true">{self.base_url}/view/{item["id"]}</guid><pubDate>{date}</pubDate>'
                f"<nyaa:seeders>{item['seeders']}</nyaa:seeders><nyaa:leechers>{item['leechers']}</nyaa:leechers>"
                f"<nyaa:downloads>999</nyaa:downloads><nyaa:infoHash>{item['hash']}</nyaa:infoHash>"
                f"<nyaa:categoryId>{item['category']}</nyaa:categoryId>"
                f"<nyaa:category>Anime - English-translated</nyaa:category><nyaa:size>{item['size']}</nyaa:size>"
                f"<nyaa:comments>2</nyaa:comments><nyaa:trusted>{'Yes' if item['trusted'] else 'No'}</nyaa:trusted>"
                "<nyaa:remake>No</nyaa:remake><description><![CDATA[#1]]></description></item>")


def main(argv: list[str] | None = None) -> None:
    args = command_line("Run a fake Nyaa RSS search.", 8774, argv)
    fake = FakeNyaa().serve(args.port, args.host)
    fake.add("[SubsPlease] Frieren - 01 (1080p) [ABCDEF01].mkv")
    serve_until_interrupted(fake, f"Fake Nyaa on {fake.base_url}")


if __name__ == "__main__":
    main()
