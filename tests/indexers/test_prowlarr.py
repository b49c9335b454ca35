"""Flotilla speaking Prowlarr API v1 (/prowlarr/): AudioBookRequest's exact request sequence validated as
strictly as its own models, Prowlarr's shapes and error bodies, auth, isolation, hostile parameters."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import bencodepy
import pytest
from django.test import Client
from django.utils import timezone

from downloads.models import Job
from indexers.models import JobSource, SearchResult
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.indexers import prowlarr_client as abr
from tests.indexers.conftest import mam_indexer, nyaa_indexer

pytestmark = pytest.mark.django_db

KEY = "flt_prowlarr_alice" + "a" * 30
OTHER_KEY = "flt_prowlarr_mallory" + "m" * 28
BASE = "http://testserver/prowlarr"
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NOT_IN_CACHE = "Couldn't find requested release in cache, try searching again"


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10))
    return user


@pytest.fixture
def mallory(other_user):
    ApiKeyFactory(user=other_user, raw=OTHER_KEY)
    return other_user


@pytest.fixture
def books(mam):
    return {"hail": mam.add("Project Hail Mary", series=("Standalone", "1")),
            "martian": mam.add("The Martian", size="900.5 MiB", free=1, filetype="mp3")}


def get(client: Client, url: str, **headers):
    return client.get(url.removeprefix("http://testserver"), headers=headers)


def search(client: Client, indexer_ids, query="Project Hail Mary", key=KEY):
    return get(client, abr.search_url(BASE, query, [3030], indexer_ids), **abr.key_headers(key, accept_json=True))


def test_audiobookrequest_sequence_indexers_search_grab_and_fetch(client, alice, mam, books):
    indexer = mam_indexer(mam, alice, name="MyAnonamouse")
    second = nyaa_indexer_for_categories(alice)
    # 1. Settings > Prowlarr: the indexer list
    listed = get(client, f"{BASE}/api/v1/indexer", **abr.key_headers(KEY))
    assert listed.status_code == 200 and listed["Content-Type"].startswith("application/json")
    by_id = {i["id"]: i for i in abr.validate_indexers(listed.json())}
    assert by_id[indexer.pk]["privacy"] == "private" and by_id[indexer.pk]["enable"] is True
    # 2. Sources: repeated keys, as urlencode(doseq=True) writes them
    url = abr.search_url(BASE, "Project Hail Mary", [3030], [indexer.pk, second.pk])
    assert f"indexerIds={indexer.pk}&indexerIds={second.pk}" in url and "query=Project+Hail+Mary" in url
    found = get(client, url, **abr.key_headers(KEY, accept_json=True))
    assert found.status_code == 200 and found["Content-Type"].startswith("application/json")
    [release] = abr.validate_search(found.json())
    assert release["title"] == "Project Hail Mary by Andy Weir [ENG / M4B]"
    assert release["guid"] == release["infoUrl"] == f"https://www.myanonamouse.net/t/{books['hail']}"
    assert release["indexerId"] == indexer.pk and release["indexer"] == "MyAnonamouse"
    assert release["protocol"] == "torrent" and DATE.match(release["publishDate"])
    assert release["size"] == int(1.2 * 1024**3) and release["seeders"] == 10 and release["leechers"] == 1
    assert release["categories"][0] == {"id": 3030, "name": "Audio/Audiobook", "subCategories": []}
    assert None not in release.values() and "magnetUrl" not in release and "infoHash" not in release
    assert mam.base_url not in found.content.decode() and "download.php" not in found.content.decode()
    # 3. The grab: a job for the key's user on the default backend
    grabbed = client.post("/prowlarr/api/v1/search", {"guid": release["guid"], "indexerId": release["indexerId"]},
                          content_type="application/json", headers=abr.key_headers(KEY))
    assert grabbed.status_code == 200, grabbed.content
    assert grabbed.json()["guid"] == release["guid"]
    source = JobSource.objects.select_related("job").get(indexer=indexer)
    assert source.job.user == alice and source.job.backend == "engine" and source.guid == release["guid"]
    # 4. The torrent, fetched with no key header (the key is in the link) — for the info-hash
    torrent = get(client, release["downloadUrl"], **{"User-Agent": abr.USER_AGENT})
    assert torrent.status_code == 200 and torrent["Content-Type"] == "application/x-bittorrent"
    info = bencodepy.decode(torrent.content)[b"info"]
    assert hashlib.sha1(bencodepy.encode(info)).hexdigest() == source.job.info_hash
    link = parse_qs(urlsplit(release["downloadUrl"]).query)
    assert link["apikey"] == [KEY] and str(books["hail"]) not in link["link"][0]


def nyaa_indexer_for_categories(owner):
    """A second indexer id for the repeated `indexerIds`; it has no audiobook category, so it is not asked."""
    from tests.indexers.factories import IndexerFactory

    return IndexerFactory(owner=owner, kind="nyaa", url="http://127.0.0.1:9", privacy="public", credentials="")


def test_search_results_are_strict_for_every_kind_of_result(client, alice, mam, books, nyaa):
    mam_indexer(mam, alice)
    nyaa.add("[Group] The Show - 01 [1080p].mkv")
    public = nyaa_indexer(nyaa, alice)
    found = get(client, f"{BASE}/api/v1/search?query=the&type=search", **abr.key_headers(KEY))
    assert found.status_code == 200
    releases = abr.validate_search(found.json())
    martian = next(r for r in releases if r["title"].startswith("The Martian"))
    assert "freeleech" in martian["indexerFlags"] and martian["title"].endswith("[ENG / MP3]")
    assert isinstance(martian["size"], int)
    show = next(r for r in releases if r["indexerId"] == public.pk)
    assert show["magnetUrl"].startswith("magnet:?xt=urn:btih:") and re.fullmatch(r"[0-9a-f]{40}", show["infoHash"])
    assert all("downloadUrl" in item for item in releases)  # Flotilla's proxy, for both


def test_key_in_query_header_or_bearer_and_401_with_an_empty_body(client, alice):
    for headers, url in (({"X-Api-Key": KEY}, "/prowlarr/api/v1/indexer"),
                         ({"Authorization": f"Bearer {KEY}"}, "/prowlarr/api/v1/indexer"),
                         ({}, f"/prowlarr/api/v1/indexer?apikey={KEY}")):
        assert client.get(url, headers=headers).status_code == 200
    for headers, url in (({}, "/prowlarr/api/v1/indexer"), ({"X-Api-Key": "nope"}, "/prowlarr/api/v1/search"),
                         ({"Authorization": "Bearer " + "x" * 500}, "/prowlarr/api"),
                         ({}, "/prowlarr/api/v1/system/status?apikey="), ({}, "/prowlarr/1/download?link=x")):
        response = client.get(url, headers=headers)
        assert response.status_code == 401 and response.content == b""
    assert client.post("/prowlarr/api/v1/search", {}, content_type="application/json").status_code == 401


def test_revoked_key_is_refused(client, alice):
    from accounts.models import ApiKey

    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    assert client.get("/prowlarr/api/v1/indexer", headers={"X-Api-Key": KEY}).status_code == 401


def test_ping_api_status_and_categories(client, alice):
    assert client.get("/prowlarr/ping").json() == {"status": "OK"}
    assert client.head("/prowlarr/ping").status_code == 200
    headers = {"X-Api-Key": KEY}
    assert client.get("/prowlarr/api", headers=headers).json() == {"current": "v1", "deprecated": []}
    status = client.get("/prowlarr/api/v1/system/status", headers=headers).json()
    assert status["appName"] == "Flotilla" and status["urlBase"] == "/prowlarr" and DATE.match(status["startTime"])
    cats = client.get("/prowlarr/api/v1/indexer/categories", headers=headers).json()
    audio = next(c for c in cats if c["id"] == 3000)
    assert {"id": 3030, "name": "Audio/Audiobook", "subCategories": []} in audio["subCategories"]
    assert client.get("/prowlarr//api/v1/indexer", headers=headers).status_code == 200  # base URL ending in "/"
    unknown = client.get("/prowlarr/api/v1/history", headers=headers)
    assert unknown.status_code == 404 and unknown.json() == {"message": "Not Found"}


def test_indexer_resource_shape(client, alice, mam):
    indexer = mam_indexer(mam, alice, name="MAM")
    body = client.get(f"/prowlarr/api/v1/indexer/{indexer.pk}", headers={"X-Api-Key": KEY}).json()
    assert body["id"] == indexer.pk and body["implementation"] == "MyAnonamouse" and body["protocol"] == "torrent"
    assert body["capabilities"]["bookSearchParams"] == ["q", "title", "author"]
    assert {"id": 3030, "name": "Audio/Audiobook", "subCategories": []} in next(
        c for c in body["capabilities"]["categories"] if c["id"] == 3000)["subCategories"]
    assert DATE.match(body["added"]) and None not in body.values() and "credentials" not in body
    assert body["indexerUrls"] == [mam.base_url]


def test_grab_errors_have_prowlarr_shapes(client, alice, mam, books):
    indexer = mam_indexer(mam, alice)
    headers = abr.key_headers(KEY)
    post = lambda body: client.post("/prowlarr/api/v1/search", body, content_type="application/json",  # noqa: E731
                                    headers=headers)
    unknown = post({"guid": "https://www.myanonamouse.net/t/1", "indexerId": indexer.pk})
    assert unknown.status_code == 404 and unknown.json() == {"message": NOT_IN_CACHE}
    invalid = post({"guid": "", "indexerId": indexer.pk})
    assert invalid.status_code == 400 and invalid.json()[0]["propertyName"] == "Guid"
    assert post({"guid": "x", "indexerId": "1"}).json()[0]["propertyName"] == "IndexerId"
    assert post(b"{not json").status_code == 400 and post([1, 2]).status_code == 400
    [release] = search(client, [indexer.pk]).json()
    mam.fail_next(500, "oops", times=5)
    failed = post({"GUID": release["guid"], "IndexerID": release["indexerId"]})  # keys case-insensitive
    assert failed.status_code == 409 and failed.json()["message"] == "Getting release from indexer failed"
    assert not Job.objects.exists()
    mam.faults.clear()
    broken_link = client.get(f"/prowlarr/{indexer.pk}/download?apikey={KEY}&link=forged")
    assert broken_link.status_code == 404 and broken_link.json() == {"message": NOT_IN_CACHE}


def test_download_proxy_409_when_the_tracker_fails(client, alice, mam, books):
    indexer = mam_indexer(mam, alice)
    [release] = search(client, [indexer.pk]).json()
    mam.fail_next(403, "Error, you are not signed in", times=5)
    response = get(client, release["downloadUrl"])
    assert response.status_code == 409 and response.json()["message"] == "Getting release from indexer failed"


def test_bulk_grab_tries_each_and_echoes_the_list(client, alice, mam, books):
    indexer = mam_indexer(mam, alice)
    [release] = search(client, [indexer.pk]).json()
    body = [{"guid": release["guid"], "indexerId": indexer.pk}, {"guid": "missing", "indexerId": indexer.pk}]
    response = client.post("/prowlarr/api/v1/search/bulk", body, content_type="application/json",
                           headers={"X-Api-Key": KEY})
    assert response.status_code == 200 and response.json() == body
    assert Job.objects.filter(user=alice).count() == 1


def test_another_users_indexer_results_and_links_are_not_found(client, alice, mallory, mam, books):
    mine = mam_indexer(mam, alice)
    theirs = mam_indexer(mam, mallory)
    headers = {"X-Api-Key": KEY}
    assert client.get(f"/prowlarr/api/v1/indexer/{theirs.pk}", headers=headers).status_code == 404
    assert [i["id"] for i in client.get("/prowlarr/api/v1/indexer", headers=headers).json()] == [mine.pk]
    refused = search(client, [theirs.pk])
    assert refused.status_code == 400 and "message" in refused.json()
    [release] = search(client, [theirs.pk], key=OTHER_KEY).json()  # mallory's own search
    grab = client.post("/prowlarr/api/v1/search", {"guid": release["guid"], "indexerId": theirs.pk},
                       content_type="application/json", headers=headers)
    assert grab.status_code == 404
    link = parse_qs(urlsplit(release["downloadUrl"]).query)["link"][0]
    stolen = client.get(f"/prowlarr/{theirs.pk}/download", {"apikey": KEY, "link": link})
    assert stolen.status_code == 404
    moved = client.get(f"/prowlarr/{mine.pk}/download", {"apikey": OTHER_KEY, "link": link})
    assert moved.status_code == 404  # a link names its indexer: another id in the path does not open it
    assert SearchResult.objects.filter(user=alice).count() == 0


HOSTILE = [
    "limit=abc", "limit=-1", "offset=1e9", "categories=x", "categories=3030,,7020", "categories=-5",
    "indexerIds=99999999999999999999999", "indexerIds=0", "indexerIds=%00", "query=%00%ff%fe", "type=%00",
    "query=" + "a" * 5000, "query={author:}{title:", "type=tvsearch&query={season:99999999999}",
    "categories=" + ",".join(["3030"] * 500), "limit=999999999", "query=%F0%9F%8E%A7&type=book",
]


@pytest.mark.parametrize("params", HOSTILE)
def test_hostile_query_parameters_never_5xx(client, alice, params):
    response = client.get(f"/prowlarr/api/v1/search?{params}", headers={"X-Api-Key": KEY})
    assert response.status_code in (200, 400), response.content
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("path", ["/prowlarr/api/v1/indexer/99999999999999999999999", "/prowlarr/0/download?link=",
                                  "/prowlarr/5/download?link=" + "x" * 5000, "/prowlarr/api/v1/indexer/0"])
def test_hostile_paths_never_5xx(client, alice, path):
    assert client.get(path, headers={"X-Api-Key": KEY}).status_code in (400, 404)


def test_hostile_bodies_never_5xx(client, alice):
    for body in (b"\xff\xfe", b"[" * 5000, b'{"guid": {"a": 1}, "indexerId": 1}', b'{"indexerId": 1e400}',
                 b'{"guid": "x", "indexerId": 99999999999999999999999999}', b"null", b'"str"'):
        response = client.post("/prowlarr/api/v1/search", body, content_type="application/json",
                               headers={"X-Api-Key": KEY})
        assert response.status_code in (400, 404), (body, response.content)
        bulk = client.post("/prowlarr/api/v1/search/bulk", body, content_type="application/json",
                           headers={"X-Api-Key": KEY})
        assert bulk.status_code == 400, (body, bulk.content)
