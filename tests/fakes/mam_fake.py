"""A faithful fake of MyAnonamouse's JSON endpoints, over real HTTP on 127.0.0.1.

Shapes from ../shared/research/prowlarr_mam.md §4 (Prowlarr's and Jackett's MyAnonamouse definitions, ABR):
- `GET /tor/js/loadSearchJSONbasic.php` with PHP-style `tor[text]`, `tor[srchIn][…]`, `tor[main_cat][i]`,
  `tor[perpage]`, `tor[startNumber]`; answers `{"data": [...], "total", "found"}` with MAM's types (size a
  human string, `*_info` JSON strings inside the JSON, numbers sometimes strings, `added` UTC), or
  `{"error": "Nothing returned, out of 0"}` when nothing matches;
- `GET /tor/download.php?tid=<id>` → the .torrent bytes (`application/x-bittorrent`);
- `GET /jsonLoad.php[?snatch_summary]` → the account (username, classname, ratio, unsat {count, limit}, …);
- `GET /t/p/[<cache-buster>/]large/<id>.<jpeg|png|gif>` → the torrent's poster (the CDN's path, served here on
  the same host), for a torrent added with a `cover`: its search row then has `poster_type` ("image/jpeg"), as
  MAM's rows do when asked with `thumbnails=1`;
- `GET /json/loadUserDetailsTorrents.php?uid=&type=unsat|sSat|seedUnsat|…&iteration=N` → the user's snatch list
  of that kind, `{"rows": [...], "success": true}`, each row in the shape a public MAM client decodes
  (research audiobooks.md §4: id, title, seedtime, finished, … numbers often strings), `snatch_page_size` rows
  a page, `{"rows": []}` past the end; another user's uid → `{"rows": [], "success": false}`;
- the `mam_id` cookie: every authenticated answer sets a new one (`Set-Cookie: mam_id=…`); with
  `strict_rotation` the previous value stops working once a newer one was handed out (so a client that does
  not persist the rotation fails on its next call); an unknown/expired cookie → 403 with MAM's text
  "Error, you are not signed in".

Run by hand: `python -m tests.fakes.mam_fake --port 8771` (prints a mam_id and a few audiobooks; point a
MyAnonamouse indexer at http://127.0.0.1:8771 with that mam_id).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time

from tests.fakes.indexer_http import Answer, FakeIndexerServer, command_line, serve_until_interrupted

ERROR_SIGNED_OUT = b"Error, you are not signed in <br />"
UID = 4242
POSTER_PATH = re.compile(r"/t/p/(?:\d+/)?large/(\d{1,12})\.(jpeg|png|gif)")
SNATCH_KINDS = ("unsat", "seedUnsat", "inactUnsat", "sSat", "inactSat", "seedHnr", "inactHnr", "upAct", "upInact",
                "leeching")


def sample_torrent(name: str) -> bytes:
    """A small valid single-file .torrent (for contract tests that do not need a swarm)."""
    import bencodepy

    piece = 16384
    data = {b"announce": b"http://127.0.0.1:9/announce",
            b"info": {b"name": name.encode(), b"length": piece, b"piece length": piece, b"pieces": b"\x00" * 20,
                      b"private": 1}}
    return bencodepy.encode(data)


class FakeMam(FakeIndexerServer):
    name = "mam-fake"

    def __init__(self, *, strict_rotation: bool = True, classname: str = "Power User") -> None:
        super().__init__()
        self.strict_rotation = strict_rotation
        self.classname = classname
        self.cookies: dict[str, str] = {}  # value → state: "live" or "rotated"
        self.torrents: dict[int, dict] = {}
        self.files: dict[int, bytes] = {}
        self.covers: dict[int, bytes] = {}
        self._ids = itertools.count(100001)
        # The account's standing, as tests set it (jsonLoad.php): unsatisfied count/limit, transfer totals.
        self.unsat_count, self.unsat_limit = 3, 50
        self.uploaded_bytes, self.downloaded_bytes = 321 * 2**30, 100 * 2**30
        # The snatch lists (loadUserDetailsTorrents.php) by kind: torrent ids, as tests set them.
        self.snatches: dict[str, list[int]] = {kind: [] for kind in SNATCH_KINDS}
        self.snatch_page_size = 50

    def new_session(self) -> str:
        value = secrets.token_urlsafe(24)
        self.cookies[value] = "live"
        return value

    def expire_all(self) -> None:
        self.cookies.clear()

    def add(self, title: str, *, authors=("Andy Weir",), narrators=("Ray Porter",), series=None, category=39,
            filetype="m4b", size="1.2 GiB", seeders=10, leechers=1, torrent: bytes | None = None,
            cover: bytes | None = None, poster_type: str = "image/jpeg", **extra) -> int:
        tid = next(self._ids)
        row = {"id": tid, "title": title, "name": title,
               "author_info": json.dumps({str(i + 1): a for i, a in enumerate(authors)}),
               "narrator_info": json.dumps({str(i + 1): n for i, n in enumerate(narrators)}),
               "series_info": json.dumps({"7": [series[0], series[1]]}) if series else "",
               "lang_code": "ENG", "language": 1, "main_cat": 13 if category in range(39, 60) else 14,
               "category": category, "catname": "Audiobooks - Science Fiction", "filetype": filetype,
               "numfiles": 1, "size": size, "seeders": str(seeders), "leechers": leechers,
               "times_completed": 250, "added": "2021-05-04 03:02:01", "vip": 0, "free": "0", "fl_vip": 0,
               "personal_freeleech": 0, "tags": "unabridged", "owner_name": "uploader", "my_snatched": 0,
               "browseflags": 0, "dl": secrets.token_hex(8), **extra}
        if cover is not None:
            row["poster_type"] = poster_type
            self.covers[tid] = cover
        self.torrents[tid] = row
        self.files[tid] = torrent if torrent is not None else sample_torrent(f"{title}.{filetype}")
        return tid

    # --- HTTP ----------------------------------------------------------------------------------------

    def _session(self, headers) -> tuple[str | None, tuple]:
        cookie = headers.get("Cookie", "")
        value = next((part.split("=", 1)[1] for part in cookie.split(";") if part.strip().startswith("mam_id=")), None)
        if value is None or self.cookies.get(value) != "live":
            return None, ()
        fresh = secrets.token_urlsafe(24)
        with self.lock:
            self.cookies[fresh] = "live"
            if self.strict_rotation:
                self.cookies[value] = "rotated"
        expires = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(time.time() + 30 * 86400))
        return value, (("Set-Cookie", f"mam_id={fresh}; expires={expires}; path=/; domain=.myanonamouse.net; "
                                      "secure; HttpOnly"),)

    def handle(self, method, path, query, headers) -> Answer:
        session, cookie_headers = self._session(headers)
        if session is None:
            return Answer(403, ERROR_SIGNED_OUT, "text/html; charset=UTF-8")
        params = dict(query)
        if path == "/tor/js/loadSearchJSONbasic.php":
            return self._search(query, params, cookie_headers)
        if path == "/tor/download.php":
            tid = int(params.get("tid", "0") or 0) if params.get("tid", "").isdigit() else 0
            if tid not in self.files:
                return Answer(404, b"Error, no such torrent", "text/html", cookie_headers)
            return Answer(200, self.files[tid], "application/x-bittorrent", cookie_headers)
        poster = POSTER_PATH.fullmatch(path)
        if poster:
            body = self.covers.get(int(poster.group(1)))
            if body is None:
                return Answer(404, b"Not found", "text/html", cookie_headers)
            return Answer(200, body, f"image/{poster.group(2)}", cookie_headers)
        if path == "/json/loadUserDetailsTorrents.php":
            return Answer(200, json.dumps(self._snatch_list(params)).encode(), "application/json", cookie_headers)
        if path == "/jsonLoad.php":
            return Answer(200, json.dumps(self._account(snatch="snatch_summary" in params)).encode(),
                          "application/json", cookie_headers)
        return Answer(404, b"Not found", "text/html", cookie_headers)

    def _search(self, query, params: dict, cookie_headers) -> Answer:
        text = params.get("tor[text]", "").lower()
        fields = [k[len("tor[srchIn]["):-1] for k, v in query if k.startswith("tor[srchIn][") and v == "true"]
        mains = {int(v) for k, v in query if k.startswith("tor[main_cat]") and v.isdigit()}
        found = []
        for row in self.torrents.values():
            if mains and row["main_cat"] not in mains:
                continue
            haystack = " ".join([row["title"]] + [row[f"{f}_info"] for f in ("author", "narrator", "series")
                                                  if f in fields]).lower()
            if all(word in haystack for word in text.split()):
                found.append(row)
        start = int(params.get("tor[startNumber]", "0") or 0)
        per_page = int(params.get("tor[perpage]", "100") or 100)
        page = found[start:start + per_page]
        if not page:
            body = {"error": "Nothing returned, out of 0"}
        else:
            body = {"perpage": per_page, "start": start, "data": page, "total": len(found), "found": len(found)}
        return Answer(200, json.dumps(body).encode(), "application/json", cookie_headers)

    def _snatch_list(self, params: dict) -> dict:
        if params.get("uid") != str(UID) or params.get("type") not in self.snatches:
            return {"rows": [], "success": False}
        iteration = int(params.get("iteration", "0")) if params.get("iteration", "0").isdigit() else 0
        start = iteration * self.snatch_page_size
        ids = self.snatches[params["type"]][start:start + self.snatch_page_size]
        return {"rows": [self._snatch_row(tid) for tid in ids], "success": True}

    def _snatch_row(self, tid: int) -> dict:
        """One row as MAM sends it: ids and counters often as strings, dates as text and unix seconds."""
        row = self.torrents.get(tid, {"title": f"Torrent {tid}", "size": "1 GiB", "category": 39})
        return {"catname": "Audiobooks - Science Fiction", "catimg": "cat_audio_scifi.png",
                "category": str(row["category"]), "id": str(tid), "title": row["title"], "comments": "0",
                "last_seed": "2026-11-30 10:00:00", "size": row["size"], "tags": "unabridged", "browseFlags": "0",
                "free": "0", "vip": 0, "vip_expire": None, "times_completed": "250", "uploaded": "1048576",
                "downloaded": "1048576", "complete_date": "2026-11-29 10:00:00", "complete_unix": "1764410400",
                "seedtime": "3600", "leechtime": "120", "OneToOne": "0", "last_action": "2026-11-30 10:00:00",
                "last_action_unix": "1764496800", "start_date": "2026-11-29 09:58:00", "start_unix": "1764410280",
                "finished": "1", "to_go": "0", "seeders": "10", "leechers": "1", "uploaderName": "uploader",
                "uploaderID": "77", "personalFree": "0", "cat": "<img src='cat_audio_scifi.png'>",
                "dl": secrets.token_hex(8), "percentDone": 100, "to_go_pretty": "0 B", "STG": "2d 23:00:00",
                "author": [{"id": "1", "name": "Andy Weir"}], "series": [], "categories": [],
                "fileTypes": [{"id": "3", "name": "m4b"}], "narrator": [{"id": "2", "name": "Ray Porter"}],
                "fileTypesDisabled": []}

    def _account(self, *, snatch: bool) -> dict:
        ratio = self.uploaded_bytes / self.downloaded_bytes if self.downloaded_bytes else 0.0
        data = {"username": "reader", "uid": UID, "classname": self.classname, "ratio": f"{ratio:.2f}",
                "uploaded_bytes": self.uploaded_bytes, "downloaded_bytes": self.downloaded_bytes,
                "seedbonus": 12345, "wedges": 2,
                "unsat": {"count": self.unsat_count, "limit": self.unsat_limit, "name": "Unsatisfied"}}
        if snatch:
            data.update({"sSat": {"count": 40}, "seedHnr": {"count": 0}, "inactHnr": {"count": 1}})
        return data


def main(argv: list[str] | None = None) -> None:
    args = command_line("Run the fake MyAnonamouse (for demos and manual tests).", 8771, argv)
    fake = FakeMam(strict_rotation=False)
    mam_id = fake.new_session()
    fake.add("Project Hail Mary", series=("Standalone", "1"))
    fake.add("The Martian", size="900.5 MiB", free=1)
    fake.add("Artemis", filetype="mp3", seeders=0)
    fake.serve(args.port, args.host)
    serve_until_interrupted(fake, f"Fake MyAnonamouse on {fake.base_url} — mam_id: {mam_id}")


if __name__ == "__main__":
    main()
