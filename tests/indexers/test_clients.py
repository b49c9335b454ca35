"""Each client against its faithful fake (real HTTP on 127.0.0.1): the contract both sides keep."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from indexers import clients
from indexers.clients import ClientError, Query
from tests.indexers.conftest import mam_indexer, nyaa_indexer, torznab_indexer, yts_indexer

pytestmark = pytest.mark.django_db


def client_for(indexer, seconds: float = 5.0):
    return clients.build(indexer, deadline=time.monotonic() + seconds)


# --- MyAnonamouse -----------------------------------------------------------------------------------------


def test_mam_search_sends_prowlarr_params_and_normalizes_like_prowlarr(mam, user):
    tid = mam.add("Project Hail Mary", series=("Standalone", "1"), free=1, size="1.5 GiB")
    indexer = mam_indexer(mam, user)
    client = client_for(indexer)
    [release] = client.search(Query(text="project: hail mary!", categories=[3030]), client.capabilities())
    sent = dict(mam.paths("/tor/js/loadSearchJSONbasic.php")[0]["query"])
    assert sent["tor[text]"] == "project hail mary"  # punctuation → spaces, like Prowlarr and Jackett
    assert sent["tor[main_cat][0]"] == "13" and sent["tor[srchIn][narrator]"] == "true"
    assert release.title == "Project Hail Mary by Andy Weir [ENG / M4B]"
    assert release.guid == release.info_url == f"https://www.myanonamouse.net/t/{tid}"
    assert release.size == int(1.5 * 1024**3) and release.seeders == 10 and release.grabs == 250
    assert release.categories == [3030, 100039]
    assert release.flags[:2] == ["freeleech", "free"]
    assert release.published_at == datetime(2021, 5, 4, 3, 2, 1, tzinfo=UTC)
    assert release.extra["authors"] == ["Andy Weir"] and release.extra["narrators"] == ["Ray Porter"]
    assert release.extra["series"] == [{"name": "Standalone", "number": "1"}]


def test_mam_rotates_the_cookie_and_the_old_one_stops_working(mam, user):
    mam.add("The Martian")
    indexer = mam_indexer(mam, user)
    first = client_for(indexer)
    first.search(Query(text="martian"), first.capabilities())
    assert first.updated_secrets and first.updated_secrets["mam_id"] != indexer.secrets["mam_id"]
    stale = client_for(indexer)  # still holds the rotated-out value
    with pytest.raises(ClientError) as error:
        stale.search(Query(text="martian"), stale.capabilities())
    assert error.value.code == "session_expired" and error.value.permanent
    assert "Preferences" in error.value.message


def test_mam_nothing_returned_is_an_empty_list(mam, user):
    client = client_for(mam_indexer(mam, user))
    assert client.search(Query(text="nothing like this"), client.capabilities()) == []


def test_mam_download_sends_the_cookie_and_returns_the_torrent(mam, user):
    tid = mam.add("Artemis")
    client = client_for(mam_indexer(mam, user))
    [release] = client.search(Query(text="artemis"), client.capabilities())
    data, magnet = client.download(release)
    assert data == mam.files[tid] and magnet == ""
    request = mam.paths("/tor/download.php")[0]
    assert dict(request["query"]) == {"tid": str(tid)} and "mam_id=" in request["headers"]["Cookie"]


def test_mam_account_reads_ratio_class_and_unsatisfied(mam, user):
    account = client_for(mam_indexer(mam, user)).account()
    assert account["ratio"] == 3.21 and account["class"] == "Power User" and account["unsatisfied"] == 3
    assert account["unsatisfied_limit"] == 50 and account["snatch_summary"]["sSat"] == 40
    assert dict(mam.paths("/jsonLoad.php")[0]["query"]) == {"snatch_summary": "1"}


def test_mam_wrong_types_and_malformed_info_are_tolerated(mam, user):
    mam.add("Odd", seeders="12", leechers="x", size="6324306932", free=False, numfiles="7")
    mam.torrents[max(mam.torrents)]["author_info"] = '{"1": "Broken "quote"}'
    client = client_for(mam_indexer(mam, user))
    [release] = client.search(Query(text="odd"), client.capabilities())
    assert (release.seeders, release.leechers, release.size, release.files) == (12, 0, 6324306932, 7)
    assert release.extra["authors"] == [] and release.title == "Odd [ENG / M4B]"


# --- Torznab (Jackett and Prowlarr flavours) --------------------------------------------------------------


def test_torznab_caps_then_only_advertised_types_params_and_categories(torznab, user):
    torznab.add("Project Hail Mary by Andy Weir [ENG / M4B]", info_hash="a" * 40, freeleech=True)
    client = client_for(torznab_indexer(torznab, user))
    caps = client.capabilities()
    assert set(caps.searching) == {"search", "book"} and caps.searching["book"] == ["q"]
    assert {3030, 7020, 2040} <= caps.category_ids()
    query = Query(text="hail mary", kind="book", fields={"author": "Andy Weir"}, categories=[3030, 5070])
    [release] = client.search(query, caps)
    sent = dict(torznab.requests[-1]["query"])
    assert sent["t"] == "book" and "author" not in sent  # not advertised: folded into q
    assert sent["q"] == "hail mary Andy Weir" and sent["cat"] == "3030"  # 5070 not advertised
    assert release.seeders == 12 and release.leechers == 3 and release.size == 734_003_200
    assert release.info_hash == "a" * 40 and release.flags[0] == "freeleech"
    assert release.categories == [3030] and release.grabs == 7 and release.files == 3
    assert release.published_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    data, _ = client.download(release)
    assert data == torznab.files["1"]


def test_torznab_structured_params_sent_when_advertised(jackett, user):
    jackett.searching = {"search": "q", "book-search": "q,author,title"}
    client = client_for(torznab_indexer(jackett, user))
    client.search(Query(text="", kind="book", fields={"author": "Weir", "title": "Artemis"}), client.capabilities())
    sent = dict(jackett.requests[-1]["query"])
    assert sent["t"] == "book" and sent["author"] == "Weir" and sent["title"] == "Artemis"


def test_torznab_unadvertised_type_falls_back_to_search(jackett, user):
    jackett.searching = {"search": "q"}
    client = client_for(torznab_indexer(jackett, user))
    client.search(Query(text="dune", kind="movie", fields={"imdbid": "tt1"}), client.capabilities())
    sent = dict(jackett.requests[-1]["query"])
    assert sent["t"] == "search" and "imdbid" not in sent


def test_torznab_bad_key_is_a_permanent_auth_error_in_both_flavours(torznab, user):
    indexer = torznab_indexer(torznab, user)
    indexer.set_secrets({"apikey": "wrong"})
    with pytest.raises(ClientError) as error:
        client_for(indexer).capabilities()
    assert error.value.code == "auth_failed" and error.value.permanent


def test_torznab_magnet_redirect_is_the_answer(jackett, user):
    jackett.add("Public thing", info_hash="b" * 40, magnet_only=False)
    jackett.magnets["1"] = "magnet:?xt=urn:btih:" + "b" * 40
    client = client_for(torznab_indexer(jackett, user))
    [release] = client.search(Query(text="public"), client.capabilities())
    data, magnet = client.download(release)
    assert data == b"" and magnet.startswith("magnet:?xt=urn:btih:bbbb")


# --- YTS and Nyaa -------------------------------------------------------------------------------------------


def test_yts_one_release_per_torrent_with_magnet(yts, user):
    yts.add("Metropolis", 1927, qualities=("1080p", "2160p"))
    client = client_for(yts_indexer(yts, user))
    releases = client.search(Query(text="metropolis"), client.capabilities())
    assert [r.title for r in releases] == ["Metropolis (1927) [1080p] [web] [YTS]",
                                           "Metropolis (1927) [2160p] [web] [YTS]"]
    assert [r.categories for r in releases] == [[2040], [2045]]
    assert releases[0].magnet.startswith(f"magnet:?xt=urn:btih:{releases[0].info_hash}")
    assert releases[0].seeders == 80 and releases[0].size == 1288490189
    assert client.download(releases[0])[0].startswith(b"d")
    assert client.search(Query(text="nothing"), client.capabilities()) == []


def test_nyaa_reads_its_namespace(nyaa, user):
    item = nyaa.add("[SubsPlease] Frieren - 01 (1080p).mkv", size="1.4 GiB")
    client = client_for(nyaa_indexer(nyaa, user))
    [release] = client.search(Query(text="frieren"), client.capabilities())
    assert release.seeders == 120 and release.leechers == 8 and release.grabs == 999
    assert release.size == int(1.4 * 1024**3) and release.info_hash == item["hash"]
    assert release.categories == [5070] and release.flags == ["trusted"]
    assert release.download_url.endswith(f"/download/{item['id']}.torrent")
    assert client.download(release)[0] == nyaa.files[item["id"]]
