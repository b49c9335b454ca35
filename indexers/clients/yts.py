"""YTS (movies), through its JSON API `GET /api/v2/list_movies.json?query_term=…`.

Each movie carries several torrents (720p, 1080p, 2160p; web or bluray): one release per torrent, titled
"<title (year)> [<quality>] [<type>] [YTS]" so the quality parser and the user see the same thing. A public
tracker: the magnet is built from the info-hash with YTS's announce list, the .torrent link is kept too.
"""

from __future__ import annotations

from urllib.parse import quote

from indexers.clients.base import (
    Capabilities,
    ClientError,
    IndexerClient,
    Query,
    Release,
    check_status,
    clean_text,
    from_unix,
    info_hash,
    parse_json,
    to_int,
)

TRACKERS = ("udp://open.demonii.com:1337/announce", "udp://tracker.opentrackr.org:1337/announce",
            "udp://tracker.openbittorrent.com:80")
CATEGORY = {"720p": 2040, "1080p": 2040, "2160p": 2045, "3D": 2060}


class YtsClient(IndexerClient):
    kind = "yts"
    default_url = "https://yts.mx"
    default_interval = 1.0

    @classmethod
    def static_capabilities(cls) -> Capabilities:
        return Capabilities(searching={"search": ["q"], "movie": ["q", "imdbid"]},
                            categories=[{"id": 2000, "name": "Movies", "subcats": [
                                {"id": 2040, "name": "Movies/HD"}, {"id": 2045, "name": "Movies/UHD"},
                                {"id": 2060, "name": "Movies/3D"}]}], limit_max=50)

    def search(self, query: Query, caps: Capabilities) -> list[Release]:
        term = query.fields.get("imdbid") or query.words()
        params = [("query_term", term or "0"), ("limit", str(max(1, min(query.limit, 50)))),
                  ("page", str(query.offset // max(1, min(query.limit, 50)) + 1))]
        response = self.get(f"{self.url}/api/v2/list_movies.json", params=params,
                            headers={"Accept": "application/json"})
        check_status(response, "search")
        data = parse_json(response.body)
        if not isinstance(data, dict) or data.get("status") != "ok":
            message = clean_text(data.get("status_message") if isinstance(data, dict) else "", 200)
            raise ClientError(f"YTS answered an error{': ' + message if message else ''}.", code="bad_response")
        movies = (data.get("data") or {}).get("movies") if isinstance(data.get("data"), dict) else None
        if not movies:
            return []
        if not isinstance(movies, list):
            raise ClientError("YTS's answer has no movie list.", code="bad_response")
        return [r for movie in movies if isinstance(movie, dict) for r in self._releases(movie)]

    def _releases(self, movie: dict) -> list[Release]:
        name = clean_text(movie.get("title_long") or movie.get("title"), 300)
        torrents = movie.get("torrents")
        if not name or not isinstance(torrents, list):
            return []
        found = []
        for torrent in torrents:
            if not isinstance(torrent, dict):
                continue
            digest = info_hash(torrent.get("hash"))
            quality = clean_text(torrent.get("quality"), 20)
            kind = clean_text(torrent.get("type"), 20)
            if not digest:
                continue
            title = f"{name} [{quality}] [{kind}] [YTS]" if kind else f"{name} [{quality}] [YTS]"
            magnet = f"magnet:?xt=urn:btih:{digest}&dn={quote(title)}" + "".join(
                f"&tr={quote(t, safe='')}" for t in TRACKERS)
            url = clean_text(torrent.get("url"), 500)
            found.append(Release(
                guid=f"yts:{digest}", title=title, size=to_int(torrent.get("size_bytes")),
                seeders=to_int(torrent.get("seeds")), leechers=to_int(torrent.get("peers")),
                published_at=from_unix(torrent.get("date_uploaded_unix")),
                categories=[CATEGORY.get(quality, 2000)], info_hash=digest,
                info_url=_http(movie.get("url")), download_url=_http(url), magnet=magnet,
                extra={"imdbid": clean_text(movie.get("imdb_code"), 20), "year": to_int(movie.get("year")) or None}))
        return found


def _http(value) -> str:
    text = str(value or "").strip()
    return text[:1000] if text.lower().startswith(("http://", "https://")) else ""
