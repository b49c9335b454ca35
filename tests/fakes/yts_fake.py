"""A faithful fake of YTS's JSON API (`GET /api/v2/list_movies.json`), over real HTTP on 127.0.0.1.

The shape YTS answers (status/status_message/data.movie_count/movies[].torrents[] with hash, quality, type,
seeds, peers, size_bytes, date_uploaded_unix, url), as the *arr definitions and YTS's API page describe it;
`movies` is absent when nothing matches. Torrent links `/torrent/download/<HASH>` serve a .torrent.

Run by hand: `python -m tests.fakes.yts_fake --port 8773`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time

from tests.fakes.indexer_http import Answer, FakeIndexerServer, command_line, serve_until_interrupted
from tests.fakes.mam_fake import sample_torrent


class FakeYts(FakeIndexerServer):
    name = "yts-fake"

    def __init__(self) -> None:
        super().__init__()
        self.movies: list[dict] = []
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(50001)

    def add(self, title: str, year: int = 2021, qualities=("720p", "1080p"), seeds: int = 80) -> dict:
        movie_id = next(self._ids)
        torrents = []
        for quality in qualities:
            digest = hashlib.sha1(f"{title}{quality}".encode()).hexdigest().upper()
            self.files[digest] = sample_torrent(f"{title} {quality}")
            torrents.append({"url": f"{self.base_url}/torrent/download/{digest}", "hash": digest,
                             "quality": quality, "type": "web", "is_repack": "0", "video_codec": "x264",
                             "bit_depth": "8", "audio_channels": "2.0", "seeds": seeds, "peers": 4,
                             "size": "1.2 GB", "size_bytes": 1288490189, "date_uploaded": "2024-01-02 03:04:05",
                             "date_uploaded_unix": 1704164645})
        movie = {"id": movie_id, "url": f"https://yts.mx/movies/{title.lower().replace(' ', '-')}-{year}",
                 "imdb_code": f"tt{movie_id:07d}", "title": title, "title_english": title,
                 "title_long": f"{title} ({year})", "slug": f"{title.lower()}-{year}", "year": year, "rating": 7.1,
                 "runtime": 120, "genres": ["Drama"], "language": "en", "torrents": torrents}
        self.movies.append(movie)
        return movie

    def handle(self, method, path, query, headers) -> Answer:
        params = dict(query)
        if path.startswith("/torrent/download/"):
            digest = path.rsplit("/", 1)[-1]
            if digest not in self.files:
                return Answer(404, b"", "text/html")
            return Answer(200, self.files[digest], "application/x-bittorrent")
        if path != "/api/v2/list_movies.json":
            return Answer(404, b"<html>404</html>", "text/html")
        term = params.get("query_term", "").lower()
        limit = min(int(params.get("limit", "20") or 20), 50)
        found = [m for m in self.movies if term in ("", "0") or term in m["title"].lower() or term == m["imdb_code"]]
        data = {"movie_count": len(found), "limit": limit, "page_number": int(params.get("page", "1") or 1)}
        if found:
            data["movies"] = found[:limit]
        body = {"status": "ok", "status_message": "Query was successful", "data": data,
                "@meta": {"server_time": int(time.time()), "api_version": 2, "execution_time": "0 ms"}}
        return Answer(200, json.dumps(body).encode(), "application/json")


def main(argv: list[str] | None = None) -> None:
    args = command_line("Run a fake YTS API.", 8773, argv)
    fake = FakeYts().serve(args.port, args.host)
    fake.add("Night of the Living Dead", 1968)
    fake.add("Metropolis", 1927, qualities=("1080p", "2160p"))
    serve_until_interrupted(fake, f"Fake YTS on {fake.base_url}")


if __name__ == "__main__":
    main()
