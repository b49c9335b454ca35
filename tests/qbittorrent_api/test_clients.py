"""The qBittorrent API against a running Flotilla (daphne): the real `qbittorrent-api` client over the whole
surface, Sonarr's call sequence replayed beside a real qbittorrent-nox 4.5.2 (same statuses, same field names
and JSON types), and hostile inputs that must never get a 5xx."""

from __future__ import annotations

import time

import httpx
import pytest
import qbittorrentapi

from downloads.models import Job, Status
from tests.accounts.factories import ApiKeyFactory
from tests.e2e.conftest import web  # noqa: F401 — the daphne fixture
from tests.qbittorrent_api.test_api import magnet, torrent_file
from tests.servers import daemons

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_qbt_e2e_" + "q" * 36
HASH = "5a" * 20


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    return user


def client_for(base_url: str, username: str, password: str) -> qbittorrentapi.Client:
    return qbittorrentapi.Client(host=base_url, username=username, password=password,
                                 VERIFY_WEBUI_CERTIFICATE=False, REQUESTS_ARGS={"timeout": 30})


def test_qbittorrent_api_client_drives_the_whole_surface(web, alice):  # noqa: F811
    qbt = client_for(web.base_url + "/qbittorrent", alice.email, KEY)
    qbt.auth_log_in()
    assert qbt.app_version() == "v4.5.2" and qbt.app_web_api_version() == "2.8.19"
    assert qbt.app_build_info()["libtorrent"] and qbt.app_preferences()["web_ui_username"] == alice.email
    assert qbt.app_default_save_path().endswith(f"/{alice.pk}")

    qbt.torrents_create_category(name="tv", save_path="/data/tv")
    qbt.torrents_edit_category(name="tv", save_path="/data/tv2")
    assert qbt.torrents_categories() == {"tv": {"name": "tv", "savePath": "/data/tv2"}}
    assert qbt.torrents_add(urls=[magnet(HASH)], category="tv", tags=["x", "y"], is_paused=True) == "Ok."
    assert qbt.torrents_add(torrent_files={"s.torrent": torrent_file()}, category="tv") == "Ok."
    assert qbt.torrents_add(urls=["garbage"]) == "Fails."
    torrents = {t.hash: t for t in qbt.torrents_info(category="tv")}
    assert HASH in torrents and len(torrents) == 2
    assert torrents[HASH].state == "pausedDL" and torrents[HASH].tags == "x, y"
    assert qbt.torrents_info(torrent_hashes=HASH)[0].name == "Some.Show.S01E01"
    assert qbt.torrents_properties(torrent_hash=HASH).hash == HASH
    assert qbt.torrents_files(torrent_hash=HASH) == []  # a magnet before its metadata
    assert [t.url for t in qbt.torrents_trackers(torrent_hash=HASH)][-1] == "http://127.0.0.1:6970/announce"
    with pytest.raises(qbittorrentapi.NotFound404Error):
        qbt.torrents_properties(torrent_hash="ff" * 20)

    qbt.torrents_add_tags(tags="z", torrent_hashes=HASH)
    qbt.torrents_remove_tags(tags="x", torrent_hashes=HASH)
    qbt.torrents_create_tags(tags="later")
    assert set(qbt.torrents_tags()) == {"x", "y", "z", "later"}
    qbt.torrents_delete_tags(tags="later")
    qbt.torrents_set_share_limits(ratio_limit=1.0, seeding_time_limit=30, torrent_hashes=HASH)
    qbt.torrents_set_category(category="", torrent_hashes=HASH)
    row = qbt.torrents_info(torrent_hashes=HASH)[0]
    assert (row.tags, row.category, row.ratio_limit, row.seeding_time_limit) == ("y, z", "", 1, 30)
    with pytest.raises(qbittorrentapi.Conflict409Error):
        qbt.torrents_top_priority(torrent_hashes=HASH)

    qbt.torrents_resume(torrent_hashes=HASH)
    assert Job.objects.get(user=alice, name="Some.Show.S01E01").status in (Status.QUEUED, Status.STARTING)
    qbt.torrents_pause(torrent_hashes="all")
    assert set(Job.objects.filter(user=alice).values_list("status", flat=True)) == {Status.PAUSED}

    full = qbt.sync_maindata(rid=0)
    assert full.full_update and HASH in full.torrents and "tv" in full.categories
    qbt.torrents_add_tags(tags="new", torrent_hashes=HASH)
    step = qbt.sync_maindata(rid=full.rid)
    assert "full_update" not in step and step.torrents[HASH] == {"tags": "new, y, z"} and list(step.tags) == ["new"]
    assert qbt.transfer_info().connection_status == "connected"

    qbt.torrents_delete(delete_files=True, torrent_hashes=HASH)
    assert HASH not in {t.hash for t in qbt.torrents_info()}
    assert list(qbt.sync_maindata(rid=step.rid).torrents_removed) == [HASH]
    qbt.torrents_remove_categories(categories="tv")
    assert qbt.torrents_categories() == {}
    qbt.auth_log_out()
    assert httpx.get(web.base_url + "/qbittorrent/api/v2/app/version").status_code == 403


def test_wrong_password_fails_through_the_client(web, alice):  # noqa: F811
    qbt = client_for(web.base_url + "/qbittorrent", alice.email, "not-the-key")
    with pytest.raises(qbittorrentapi.LoginFailed):
        qbt.auth_log_in()


# --- Sonarr's call sequence, beside a real qbittorrent-nox ------------------------------------------------


def sonarr_sequence(http: httpx.Client, username: str, password: str, magnet_uri: str, h: str) -> list[tuple]:
    """What Sonarr's QBittorrentProxyV2 and QBittorrent.cs send, in order (Sonarr v4 source): test connection,
    grab, poll, import, remove after seeding. Returns (step, status, parsed body) for each call."""
    calls: list[tuple] = []

    def call(step: str, method: str, path: str, **kwargs) -> httpx.Response:
        response = http.request(method, "/api/v2/" + path, **kwargs)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") \
            else response.text
        calls.append((step, response.status_code, body))
        return response

    # Test connection: IsApiSupported without a cookie (403 means "v2 is there"), login, then Test().
    call("probe", "GET", "app/webapiVersion")
    call("login", "POST", "auth/login", data={"username": username, "password": password})
    call("test", "GET", "app/webapiVersion")
    call("test", "GET", "app/preferences")
    call("test", "GET", "torrents/categories")
    call("test", "POST", "torrents/createCategory", data={"category": "tv-sonarr"})
    call("test", "POST", "torrents/createCategory", data={"category": "tv-imported"})
    call("test", "GET", "torrents/categories")
    call("test", "GET", "torrents/info", params={"category": "tv-sonarr"})
    # Grab a magnet (API >= 2.8.1: the seed limits travel with the add).
    call("grab", "GET", "app/preferences")
    call("grab", "POST", "torrents/add", data={"urls": magnet_uri, "category": "tv-sonarr", "ratioLimit": "1",
                                               "seedingTimeLimit": "60", "paused": "true"})
    # WaitForTorrent: a real qBittorrent adds a magnet asynchronously (404 until it is there; seen on a loaded
    # machine), so Sonarr asks again every 100 ms (IsTorrentLoaded, 10 times); the answer it goes on with is compared.
    give_up = time.monotonic() + 30
    while call("grab", "GET", "torrents/properties", params={"hash": h}).status_code == 404 \
            and time.monotonic() < give_up:
        calls.pop()
        time.sleep(0.1)
    # Poll (GetItems), then the seeding time of a finished one (HasReachedSeedingTimeLimit).
    call("poll", "GET", "app/webapiVersion")
    call("poll", "GET", "app/preferences")
    call("poll", "GET", "torrents/info", params={"category": "tv-sonarr"})
    call("poll", "GET", "torrents/properties", params={"hash": h})
    # Import: files (older API path), then the post-import category.
    call("import", "GET", "torrents/files", params={"hash": h})
    call("import", "POST", "torrents/setCategory", data={"hashes": h, "category": "tv-imported"})
    # Remove after seeding.
    call("remove", "POST", "torrents/delete", data={"hashes": h, "deleteFiles": "true"})
    call("remove", "GET", "torrents/info", params={"category": "tv-imported"})
    return calls


def json_shape(value):
    """Field names and JSON types, recursively (int and float are one JSON number, as Sonarr reads them)."""
    if isinstance(value, dict):
        return {k: json_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


QBT_TORRENT_TYPES = {  # qBittorrent's WebUI API documentation, torrents/info
    "hash": str, "name": str, "size": int, "progress": (int, float), "eta": int, "state": str, "category": str,
    "save_path": str, "content_path": str, "ratio": (int, float), "ratio_limit": (int, float),
    "seeding_time": int, "seeding_time_limit": int, "tags": str, "dlspeed": int, "upspeed": int,
    "added_on": int, "completion_on": int, "amount_left": int, "num_seeds": int, "num_leechs": int,
}


def test_sonarr_sequence_matches_a_real_qbittorrent(web, alice, tmp_path):  # noqa: F811
    h = "7c" * 20
    uri = magnet(h, "Show.S01E01.1080p")
    with httpx.Client(base_url=web.base_url + "/qbittorrent", timeout=30) as http:
        ours = sonarr_sequence(http, alice.email, KEY, uri, h)
    with daemons.running("qbittorrent", tmp_path / "qbt") as nox, \
            httpx.Client(base_url=f"http://127.0.0.1:{nox.rpc_port}", timeout=30) as http:
        theirs = sonarr_sequence(http, nox.username, nox.password, uri, h)

    assert [(step, status) for step, status, _ in ours] == [(step, status) for step, status, _ in theirs]
    for (step, _, mine), (_, _, real) in zip(ours, theirs, strict=True):
        assert json_shape(mine) == json_shape(real), step
    info = next(body for step, _, body in ours if step == "poll" and isinstance(body, list))
    for field, types in QBT_TORRENT_TYPES.items():
        assert isinstance(info[0][field], types) and not isinstance(info[0][field], bool), field
    assert ours[0][1:] == (403, "Forbidden") and ours[1][2] == "Ok."
    assert not Job.objects.filter(user=alice).exists()  # removed with its files


# --- hostile input: never a 5xx ---------------------------------------------------------------------------


def test_hostile_input_never_gets_a_5xx(web, alice, other_user):  # noqa: F811
    from tests.downloads.factories import JobFactory

    theirs = JobFactory(user=other_user)
    with httpx.Client(base_url=web.base_url + "/qbittorrent/api/v2/", timeout=60) as http:
        assert http.post("auth/login", data={"username": alice.email, "password": KEY}).text == "Ok."
        attempts = [
            ("POST", "torrents/add", {"data": {"urls": "magnet:?xt=urn:btih:zz"}}),
            ("POST", "torrents/add", {"data": {"urls": "magnet:?xt=urn:btih:" + "a" * 39 + "&dn=" + "x" * 9000}}),
            ("POST", "torrents/add", {"data": {"urls": "\x00\n" * 50}}),
            ("POST", "torrents/add", {"files": {"torrents": ("a.torrent", b"d4:info" + b"l" * 5000)}}),
            ("POST", "torrents/add", {"files": {"torrents": ("big.torrent", b"0" * (11 * 1024 * 1024))}}),
            ("POST", "torrents/add", {"content": b"--x\r\nbroken", "headers": {
                "Content-Type": "multipart/form-data; boundary=x"}}),
            ("POST", "torrents/add", {"content": b"a" * 100, "headers": {"Content-Type": "multipart/form-data"}}),
            ("POST", "torrents/add", {"content": b"\xff\xfe=%%%", "headers": {
                "Content-Type": "application/x-www-form-urlencoded"}}),
            ("POST", "torrents/add", {"data": {"urls": magnet(), "ratioLimit": "nan", "seedingTimeLimit": "1e99"}}),
            ("POST", "torrents/setShareLimits",
             {"data": {"hashes": "all", "ratioLimit": "x", "seedingTimeLimit": "y"}}),
            ("GET", "torrents/properties", {"params": {"hash": theirs.info_hash}}),
            ("GET", "torrents/properties", {"params": {"hash": "../../etc/passwd"}}),
            ("GET", "torrents/files", {"params": {"hash": "ab" * 500}}),
            ("POST", "torrents/delete", {"data": {"hashes": "|" * 1000, "deleteFiles": "true"}}),
            ("POST", "torrents/createCategory", {"data": {"category": "a//b"}}),
            ("POST", "torrents/createCategory", {"data": {"category": "x" * 10_000}}),
            ("GET", "torrents/info", {"params": {"sort": "name", "limit": "-5", "offset": "x", "filter": "\x00"}}),
            ("GET", "sync/maindata", {"params": {"rid": "-1"}}),
            ("GET", "sync/maindata", {"params": {"rid": "9" * 40}}),
        ]
        for method, path, kwargs in attempts:
            answer = http.request(method, path, **kwargs)
            assert answer.status_code < 500, (path, kwargs.get("data") or kwargs.get("params"), answer.text[:300])
        theirs.refresh_from_db()
        assert theirs.status == Status.QUEUED
        assert http.get("torrents/properties", params={"hash": theirs.info_hash}).status_code == 404
