"""Flotilla's Torznab feeds (/torznab/<id>/api, /torznab/all/api) read the way Sonarr's TorznabRssParser and
NewznabCapabilitiesProvider read a feed (defusedxml here): Newznab error elements (100-199 = bad key), every
`torznab:attr` but category/tag at most once per item (Sonarr's SingleOrDefault), an enclosure typed
application/x-bittorrent, integer seeders/peers/size; caps; the download proxy; isolation; hostile params."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import bencodepy
import defusedxml.ElementTree as SafeET
import pytest

from indexers.models import SearchResult
from tests.accounts.factories import ApiKeyFactory
from tests.indexers.conftest import mam_indexer, nyaa_indexer
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db

KEY = "flt_torznab_alice" + "t" * 31
OTHER_KEY = "flt_torznab_mallory" + "m" * 29
NS = "{http://torznab.com/schemas/2015/feed}"


class TorznabError(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(f"{code}: {description}")
        self.code, self.description = code, description


def parse_feed(body: bytes) -> list[dict]:
    """Sonarr's reading: PreProcess (an <error> anywhere → an exception), then per item."""
    root = SafeET.fromstring(body, forbid_dtd=True)
    error = root if root.tag == "error" else root.find(".//error")
    if error is not None:
        raise TorznabError(int(error.get("code")), error.get("description"))
    items = []
    for item in root.iter("item"):
        enclosure = item.find("enclosure")
        assert "application/x-bittorrent" in enclosure.get("type")
        attrs: dict[str, list[str]] = {}
        for attr in item.findall(f"{NS}attr"):
            attrs.setdefault(attr.get("name").lower(), []).append(attr.get("value"))
        single = {}
        for name, values in attrs.items():
            if name not in ("category", "tag"):
                assert len(values) == 1, f"Sonarr's SingleOrDefault throws on two {name} attrs"
                single[name] = values[0]
        items.append({
            "title": item.findtext("title"), "guid": item.findtext("guid"), "comments": item.findtext("comments"),
            "published": parsedate_to_datetime(item.findtext("pubDate")), "link": item.findtext("link"),
            "enclosure": enclosure.get("url"), "length": int(enclosure.get("length")),
            "size": int(single.get("size") or item.findtext("size")), "seeders": int(single["seeders"]),
            "peers": int(single["peers"]), "infohash": single.get("infohash"),
            "categories": [int(c) for c in attrs.get("category", [])], "tags": attrs.get("tag", []),
            "downloadvolumefactor": float(single["downloadvolumefactor"]),
            "uploadvolumefactor": float(single["uploadvolumefactor"]), "attrs": single})
    return items


def parse_caps(body: bytes) -> dict:
    root = SafeET.fromstring(body, forbid_dtd=True)
    assert root.tag == "caps"
    searching = {e.tag: (e.get("available"), e.get("supportedParams").split(",")) for e in root.find("searching")}
    categories = {int(c.get("id")): [int(s.get("id")) for s in c.findall("subcat")]
                  for c in root.find("categories")}
    return {"searching": searching, "categories": categories, "max": int(root.find("limits").get("max"))}


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    return user


@pytest.fixture
def mallory(other_user):
    ApiKeyFactory(user=other_user, raw=OTHER_KEY)
    return other_user


@pytest.fixture
def books(mam):
    return {"hail": mam.add("Project Hail Mary"), "martian": mam.add("The Martian", free=1, filetype="mp3")}


def feed(client, path: str, **params):
    return client.get(path, {"apikey": KEY, **params})


def test_caps_per_indexer_and_across_all(client, alice, mam, nyaa):
    indexer = mam_indexer(mam, alice)
    nyaa_indexer(nyaa, alice)
    response = feed(client, f"/torznab/{indexer.pk}/api", t="caps")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/rss+xml")
    caps = parse_caps(response.content)
    assert caps["searching"]["book-search"] == ("yes", ["q", "title", "author"])
    assert caps["searching"]["tv-search"][0] == "no" and 3030 in caps["categories"][3000]
    everything = parse_caps(feed(client, "/torznab/all/api", t="caps").content)
    assert 3030 in everything["categories"][3000] and 5070 in everything["categories"][5000]  # MAM's, Nyaa's
    assert everything["searching"]["search"][0] == "yes"


def test_book_search_items_as_sonarr_reads_them(client, alice, mam, books):
    indexer = mam_indexer(mam, alice)
    response = feed(client, f"/torznab/{indexer.pk}/api", t="book", author="Andy Weir", title="Martian", cat="3030")
    assert response.status_code == 200, response.content
    [item] = parse_feed(response.content)
    assert item["title"] == "The Martian by Andy Weir [ENG / MP3]"
    assert item["guid"] == item["comments"] == f"https://www.myanonamouse.net/t/{books['martian']}"
    assert item["size"] == item["length"] == int(1.2 * 1024**3) and item["seeders"] == 10 and item["peers"] == 11
    assert item["categories"][0] == 3030 and "freeleech" in item["tags"]
    assert item["downloadvolumefactor"] == 0.0 and item["uploadvolumefactor"] == 1.0
    assert item["infohash"] is None  # a private tracker's info-hash stays Flotilla's
    assert item["published"].utcoffset().total_seconds() == 0 and item["link"] == item["enclosure"]
    assert item["attrs"]["author"] == "Andy Weir" and item["attrs"]["grabs"] == "250"
    assert mam.base_url not in response.content.decode()
    # the link: Flotilla's proxy, self-authenticating, returning the .torrent
    torrent = client.get(item["link"].removeprefix("http://testserver"))
    assert torrent.status_code == 200 and torrent["Content-Type"] == "application/x-bittorrent"
    assert bencodepy.decode(torrent.content)[b"info"][b"name"] == b"The Martian.mp3"


def test_all_feed_searches_every_indexer_and_keeps_partial_results(client, alice, mam, books, nyaa):
    mam_indexer(mam, alice)
    nyaa.add("[Grp] The Martian Chronicles - 01 [1080p].mkv")
    public = nyaa_indexer(nyaa, alice)
    IndexerFactory(owner=alice, kind="torznab", url="http://127.0.0.1:9/api", timeout=1.0)  # dead
    items = parse_feed(feed(client, "/torznab/all/api", t="search", q="martian").content)
    titles = {i["title"] for i in items}
    assert "The Martian by Andy Weir [ENG / MP3]" in titles and any("Chronicles" in t for t in titles)
    show = next(i for i in items if "Chronicles" in i["title"])
    assert len(show["infohash"]) == 40 and show["attrs"]["magneturl"].startswith("magnet:?xt=urn:btih:")
    assert f"/torznab/{public.pk}/download?" in show["link"]


def test_one_indexer_feed_reports_its_failure_as_a_newznab_error(client, alice, mam, books):
    indexer = mam_indexer(mam, alice)
    mam.expire_all()
    response = feed(client, f"/torznab/{indexer.pk}/api", t="search", q="martian")
    assert response.status_code == 200
    with pytest.raises(TorznabError) as failure:
        parse_feed(response.content)
    assert failure.value.code == 900
    again = feed(client, f"/torznab/{indexer.pk}/api", t="search", q="martian")  # backed off (permanent error)
    assert again.status_code == 429 and int(again["Retry-After"]) > 0
    assert SafeET.fromstring(again.content).get("code") == "429"


@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, 200), ({"t": "nope"}, 400, 202), ({"t": "search", "limit": "x"}, 400, 201),
    ({"t": "search", "cat": "audio"}, 400, 201), ({"t": "tvsearch", "imdbid": "tt1;drop"}, 400, 201),
    ({"t": "search", "offset": "-1"}, 400, 201),
])
def test_newznab_errors_for_bad_parameters(client, alice, mam, params, status, code):
    indexer = mam_indexer(mam, alice)
    response = feed(client, f"/torznab/{indexer.pk}/api", **params)
    assert response.status_code == status
    with pytest.raises(TorznabError) as failure:
        parse_feed(response.content)
    assert failure.value.code == code


def test_bad_key_is_error_100_and_other_users_indexer_is_not_found(client, alice, mallory, mam, books):
    mine = mam_indexer(mam, alice)
    theirs = mam_indexer(mam, mallory)
    for params in ({"t": "caps"}, {"t": "caps", "apikey": "wrong"}):
        response = client.get(f"/torznab/{mine.pk}/api", params)
        assert response.status_code == 401
        with pytest.raises(TorznabError) as failure:
            parse_feed(response.content)
        assert failure.value.code == 100 and failure.value.description == "Incorrect user credentials"
    assert feed(client, f"/torznab/{theirs.pk}/api", t="caps").status_code == 404
    assert feed(client, "/torznab/999999/api", t="caps").status_code == 404
    [item] = parse_feed(client.get(f"/torznab/{theirs.pk}/api", {"apikey": OTHER_KEY, "t": "search",
                                                                  "q": "hail"}).content)
    link = parse_qs(urlsplit(item["link"]).query)["link"][0]
    stolen = client.get(f"/torznab/{theirs.pk}/download", {"apikey": KEY, "link": link})
    assert stolen.status_code == 404 and SearchResult.objects.filter(user=alice).count() == 0
    mine.enabled = False
    mine.save()
    assert feed(client, f"/torznab/{mine.pk}/api", t="caps").status_code == 410


def test_download_proxy_errors_are_newznab(client, alice, mam, books):
    indexer = mam_indexer(mam, alice)
    [item] = parse_feed(feed(client, f"/torznab/{indexer.pk}/api", t="search", q="hail").content)
    path = item["link"].removeprefix("http://testserver")
    mam.fail_next(500, "down", times=5)
    failed = client.get(path)
    assert failed.status_code == 409
    with pytest.raises(TorznabError):
        parse_feed(failed.content)
    mam.faults.clear()
    forged = client.get(f"/torznab/{indexer.pk}/download", {"apikey": KEY, "link": "forged"})
    assert forged.status_code == 404
    ok = client.get(path)
    assert ok.status_code == 200 and bencodepy.decode(ok.content)[b"info"][b"name"] == b"Project Hail Mary.m4b"


@pytest.mark.parametrize("query", [
    "t=search&q=%00%ff", "t=search&q=" + "x" * 5000, "t=book&author=%00&title=%F0%9F%8E%A7", "t=caps&t=search",
    "t=movie&imdbid=tt0000001&cat=2000,,2040", "t=tvsearch&season=99999999999999&ep=x", "t=SEARCH&q=a",
    "t=music&q=%3Cscript%3E&limit=999999999",
])
def test_hostile_parameters_never_5xx(client, alice, mam, query):
    indexer = mam_indexer(mam, alice)
    for path in (f"/torznab/{indexer.pk}/api", "/torznab/all/api"):
        response = client.get(f"{path}?apikey={KEY}&{query}")
        assert response.status_code in (200, 400), response.content
        SafeET.fromstring(response.content)  # always well-formed XML
