"""MyAnonamouse: JSON search, authenticated .torrent download and account status, with the `mam_id` cookie.

Shapes and rules from Prowlarr's MyAnonamouse definition and AudioBookRequest (research/prowlarr_mam.md §4):
- the session is the `mam_id` cookie; MAM rotates it: every response's `Set-Cookie: mam_id=…` replaces the
  stored one (`updated_secrets`, persisted by the service), or the original expires;
- an expired or IP-mismatched session answers 403 (or an HTML/text "Error, you are not signed in"): a
  permanent `session_expired` error, shown to the user and on the health page;
- `loadSearchJSONbasic.php` with PHP-style `tor[...]` keys, as Prowlarr sends them; no results come as
  `{"error": "Nothing returned, out of 0"}`; `*_info` fields are JSON strings inside the JSON; `size` is a
  human size string; numbers may be strings;
- titles follow Prowlarr: "<title> by <authors> [<LANG> / <FILETYPE>]" (+ " [VIP]"), guid = info URL =
  https://www.myanonamouse.net/t/<id> (AudioBookRequest matches on it);
- the cookie is always sent on `download.php?tid=` (Prowlarr 2.4's cookie-less download broke every grab);
- MAM asks for requests 2 s apart: the indexer's default interval (enforced by indexers.ratelimit).
"""

from __future__ import annotations

import html
import json
import re
import time
from datetime import datetime

from indexers.clients.base import (
    Capabilities,
    ClientError,
    IndexerClient,
    Query,
    Release,
    _torrent_limit,
    check_status,
    clean_text,
    parse_json,
    to_bool,
    to_int,
    to_size,
    torrent_body,
    utc,
)

PUBLIC_URL = "https://www.myanonamouse.net"
COVER_HOST = "https://cdn.myanonamouse.net"  # posters: /t/p/large/<id>.<jpeg|png|gif>, with the cookie
POSTER_EXTENSIONS = {"png": "png", "gif": "gif"}  # from `poster_type` ("image/png"); anything else: jpeg
AUDIOBOOK_CATS = {13, 15, 16, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
                  83, 84, 85, 86, 87, 88, 89, 97, 98, 99, 100, 106, 108, 111, 119}
COMICS, MAGAZINES, TECHNICAL = {61}, {79}, {80}
MAIN_CATS = {3030: 13, 3000: 13, 7020: 14, 7000: 14, 7030: 14, 7010: 14, 7040: 14}
COOKIE_RE = re.compile(r"(?:^|[;,]\s*)mam_id=([^;,\s]+)")
NOTHING = "Nothing returned, out of"


def newznab_category(mam_cat: int) -> int:
    if mam_cat in AUDIOBOOK_CATS:
        return 3030
    if mam_cat in COMICS:
        return 7030
    if mam_cat in MAGAZINES:
        return 7010
    if mam_cat in TECHNICAL:
        return 7040
    return 7020


class MyAnonamouseClient(IndexerClient):
    kind = "myanonamouse"
    default_url = PUBLIC_URL
    default_privacy = "private"
    default_interval = 2.0
    secret_names = ("mam_id",)

    @classmethod
    def static_capabilities(cls) -> Capabilities:
        return Capabilities(
            searching={"search": ["q"], "book": ["q", "title", "author"], "music": ["q"]},
            categories=[{"id": 3000, "name": "Audio", "subcats": [{"id": 3030, "name": "Audio/Audiobook"}]},
                        {"id": 7000, "name": "Books", "subcats": [
                            {"id": 7010, "name": "Books/Mags"}, {"id": 7020, "name": "Books/EBook"},
                            {"id": 7030, "name": "Books/Comics"}, {"id": 7040, "name": "Books/Technical"}]}],
            limit_max=100)

    # --- requests ---------------------------------------------------------------------------------------

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        mam_id = self.secrets.get("mam_id", "")
        if not mam_id:
            raise ClientError("No mam_id: paste a session from MyAnonamouse Preferences → Security.",
                              code="session_missing", permanent=True)
        return {"Cookie": f"mam_id={mam_id}", "Accept": accept}

    def _call(self, path: str, params: list | None = None, *, accept: str = "application/json", max_bytes=None,
              host: str | None = None):
        response = self.get(f"{host or self.url}{path}", params=params, headers=self._headers(accept),
                            max_bytes=max_bytes)
        self._rotate(response)
        if response.status == 403 or (response.status == 200 and response.body[:64].lstrip().startswith(b"Error")):
            raise ClientError("The MyAnonamouse session (mam_id) expired or does not match this server's IP: "
                              "create a new session in MAM Preferences → Security and paste it here.",
                              code="session_expired", permanent=True)
        check_status(response, "request")
        return response

    def _rotate(self, response) -> None:
        """MAM hands out a new cookie value: keep using (and persist) the newest."""
        for header in response.all_headers("Set-Cookie"):
            match = COOKIE_RE.search(header)
            if match and match.group(1) != self.secrets.get("mam_id"):
                self.secrets = {**self.secrets, "mam_id": match.group(1)}
                self.updated_secrets = dict(self.secrets)

    # --- search -------------------------------------------------------------------------------------------

    def search(self, query: Query, caps: Capabilities) -> list[Release]:
        term = re.sub(r"[^\w]+", " ", query.words()).strip()  # as Prowlarr and Jackett: punctuation → space
        if not term:
            return []
        response = self._call("/tor/js/loadSearchJSONbasic.php", self._params(term, query))
        data = parse_json(response.body)
        if not isinstance(data, dict):
            raise ClientError("MyAnonamouse answered something other than a search result.", code="bad_response")
        if "error" in data:
            error = clean_text(data.get("error"), 200)
            if error.startswith(NOTHING):
                return []
            raise ClientError(f"MyAnonamouse: {error}", code="indexer_error")
        rows = data.get("data")
        if not isinstance(rows, list):
            raise ClientError("MyAnonamouse's answer has no results list.", code="bad_response")
        vip = bool(self.account_status.get("vip"))  # VIPs also get VIP freeleech
        return [release for row in rows if isinstance(row, dict) and (release := self.release(row, vip=vip))]

    def _params(self, term: str, query: Query) -> list[tuple[str, str]]:
        params = [("tor[text]", term), ("tor[searchType]", "all"), ("tor[srchIn][title]", "true"),
                  ("tor[srchIn][author]", "true"), ("tor[srchIn][narrator]", "true"),
                  ("tor[srchIn][series]", "true"), ("tor[searchIn]", "torrents"), ("tor[sortType]", "default"),
                  ("tor[perpage]", str(max(5, min(query.limit, 100)))), ("tor[startNumber]", str(query.offset)),
                  ("description", "0"), ("thumbnails", "1")]  # as Prowlarr: rows carry poster_type
        mains = sorted({MAIN_CATS[c] for c in query.categories if c in MAIN_CATS})
        params += [(f"tor[main_cat][{i}]", str(c)) for i, c in enumerate(mains)] or [("tor[cat][]", "0")]
        return params

    def release(self, row: dict, *, vip: bool = False) -> Release | None:
        torrent_id = to_int(row.get("id"))
        title = clean_text(html.unescape(str(row.get("title") or row.get("name") or "")), 300)
        if not torrent_id or not title:
            return None
        authors = _names(row.get("author_info"))
        narrators = _names(row.get("narrator_info"))
        series = _series(row.get("series_info"))
        lang = clean_text(row.get("lang_code"), 10).upper()
        filetype = clean_text(row.get("filetype"), 40)
        full = title + (" by " + ", ".join(authors[:5]) if authors else "")
        if lang or filetype:
            full += f" [{' / '.join(p for p in (lang, filetype.upper()) if p)}]"
        flags = _flags(row, vip=vip)
        if "vip" in flags:
            full += " [VIP]"
        category = to_int(row.get("category"))
        info_url = f"{PUBLIC_URL}/t/{torrent_id}"
        return Release(
            guid=info_url, title=full, size=to_size(row.get("size")), seeders=to_int(row.get("seeders")),
            leechers=to_int(row.get("leechers")), grabs=to_int(row.get("times_completed")),
            files=to_int(row.get("numfiles")) or None, published_at=_added(row.get("added")),
            categories=[newznab_category(category)] + ([100000 + category] if category else []),
            flags=flags, info_url=info_url, download_url=f"{self.url}/tor/download.php?tid={torrent_id}",
            extra={"mam_id": torrent_id, "authors": authors, "narrators": narrators, "series": series,
                   "language": lang, "format": filetype, "book_title": title,
                   "category_name": clean_text(row.get("catname"), 100),
                   "cover_url": self._cover_url(torrent_id, row.get("poster_type"))})

    # --- download and account ---------------------------------------------------------------------------

    def download(self, release: Release) -> tuple[bytes, str]:
        torrent_id = to_int(release.extra.get("mam_id"))
        if not torrent_id:
            raise ClientError("This result has no MyAnonamouse torrent id.", code="no_link", permanent=True)
        response = self._call("/tor/download.php", [("tid", str(torrent_id))], accept="application/x-bittorrent",
                              max_bytes=_torrent_limit())
        return torrent_body(response.body), ""

    def account(self) -> dict:
        """The user's standing (jsonLoad.php): what the audiobook rules need (ratio, class, unsatisfied)."""
        data = parse_json(self._call("/jsonLoad.php", [("snatch_summary", "1")]).body)
        if not isinstance(data, dict):
            raise ClientError("MyAnonamouse's account answer is not an object.", code="bad_response")
        unsat = data.get("unsat") if isinstance(data.get("unsat"), dict) else {}
        classname = clean_text(data.get("classname"), 40)
        return {"username": clean_text(data.get("username"), 60), "uid": to_int(data.get("uid")), "class": classname,
                "vip": classname in ("VIP", "Elite VIP"), "ratio": _float(data.get("ratio")),
                "seedbonus": to_int(data.get("seedbonus")), "wedges": to_int(data.get("wedges")),
                "uploaded_bytes": to_int(data.get("uploaded_bytes")),
                "downloaded_bytes": to_int(data.get("downloaded_bytes")),
                "unsatisfied": to_int(unsat.get("count")), "unsatisfied_limit": to_int(unsat.get("limit")),
                "snatch_summary": _summary(data)}

    def _cover_host(self) -> str:
        return COVER_HOST if self.url == PUBLIC_URL else self.url  # a fake or a proxy serves both

    def _cover_url(self, torrent_id: int, poster_type) -> str:
        """MAM's poster of a torrent that has one (`poster_type`, e.g. "image/jpeg"); "" otherwise."""
        if not poster_type or not isinstance(poster_type, str):
            return ""
        ext = next((e for key, e in POSTER_EXTENSIONS.items() if key in poster_type.lower()), "jpeg")
        return f"{self._cover_host()}/t/p/large/{torrent_id}.{ext}"

    def cover(self, url: str, *, max_bytes: int) -> bytes:
        """A poster from MAM's cover host, with the session cookie, at most `max_bytes` (read capped). Any other
        URL is refused: the cookie goes nowhere else. The bytes are untrusted (the caller decodes them)."""
        host = self._cover_host()
        if not re.fullmatch(re.escape(host) + r"/t/p/(?:\d+/)?large/\d{1,12}\.(?:jpeg|png|gif)", url):
            raise ClientError("Not a MyAnonamouse cover address.", code="not_a_cover", permanent=True)
        return self._call(url[len(host):], accept="image/*", max_bytes=max_bytes, host=host).body

    def snatch_page(self, uid: int, kind: str = "unsat", iteration: int = 0) -> list[dict]:
        """One page of the user's snatch list of one kind (`/json/loadUserDetailsTorrents.php`; `unsat`: the
        torrents the tracker does not yet count as satisfied), rows reduced to id, title, seeding seconds and
        whether the download finished. Numbers arrive as numbers or strings; rows without an id are dropped.
        `cacheTime` as MAM's own page sends it (a fresh answer, not a cached one)."""
        response = self._call("/json/loadUserDetailsTorrents.php", [
            ("uid", str(uid)), ("type", kind), ("iteration", str(iteration)), ("cacheTime", str(int(time.time())))])
        data = parse_json(response.body)
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ClientError("MyAnonamouse's snatch list has no rows.", code="bad_response")
        return [{"id": to_int(row.get("id")), "title": clean_text(html.unescape(str(row.get("title") or "")), 300),
                 "seedtime": to_int(row.get("seedtime")), "finished": to_bool(row.get("finished"))}
                for row in data["rows"] if isinstance(row, dict) and to_int(row.get("id"))]

    def capabilities(self) -> Capabilities:
        return self.static_capabilities()


def _names(value) -> list[str]:
    """author_info / narrator_info: a JSON object (as a string, sometimes malformed) of id → name."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, dict):
        return []
    return [clean_text(html.unescape(str(v)), 100) for v in value.values() if isinstance(v, (str, int))][:20]


def _series(value) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, dict):
        return []
    found = []
    for entry in value.values():
        if isinstance(entry, list) and entry:
            found.append({"name": clean_text(html.unescape(str(entry[0])), 200),
                          "number": clean_text(entry[1], 40) if len(entry) > 1 else ""})
    return found[:10]


def _flags(row: dict, *, vip: bool) -> list[str]:
    flags = []
    free, personal = to_bool(row.get("free")), to_bool(row.get("personal_freeleech"))
    fl_vip = to_bool(row.get("fl_vip"))
    if free:
        flags.append("free")
    if personal:
        flags.append("personal_freeleech")
    if fl_vip:
        flags.append("fl_vip")
    if to_bool(row.get("vip")):
        flags.append("vip")
    if free or personal or (fl_vip and vip):
        flags.insert(0, "freeleech")
    return flags


def _added(value) -> datetime | None:
    try:
        return utc(datetime.strptime(str(value).strip(), "%Y-%m-%d %H:%M:%S"))  # MAM's dates are UTC
    except ValueError:
        return None


def _float(value) -> float | None:
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return number if number == number and abs(number) < 1e12 else None


def _summary(data: dict) -> dict:
    """snatch_summary: per-kind counts ({"unsat": {"count": 3}, "seedHnr": {...}}), reduced to numbers."""
    summary = {}
    for key, value in data.items():
        if isinstance(value, dict) and "count" in value and key != "unsat":
            summary[str(key)[:40]] = to_int(value.get("count"))
    return summary
