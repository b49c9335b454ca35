"""The qBittorrent Web API in process (Django's test client): auth, bans, every endpoint's answers, isolation.

Exact bodies and statuses are those a real qbittorrent-nox 4.5.2 gives (tests/qbittorrent_api/test_side_by_side.py
checks the shapes against one)."""

from __future__ import annotations

import bencode2
import pytest
from django.test import Client

from accounts.models import AuditLog
from billing.services import current_plan
from downloads.models import Job, Status
from downloads.qbittorrent_api.models import QbtCategory, QbtSession, QbtTorrent
from downloads.qbittorrent_api.services import BANNED
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db

KEY = "flt_qbt_" + "k" * 40
API = "/qbittorrent/api/v2/"
HASH = "ab" * 20


def torrent_file(name: bytes = b"show.s01", files=((b"e01.mkv", 1000), (b"e02.mkv", 2000))) -> bytes:
    info = {b"name": name, b"piece length": 16384, b"pieces": b"x" * 20,
            b"files": [{b"length": n, b"path": [p]} for p, n in files]}
    return bencode2.bencode({b"announce": b"http://127.0.0.1:6970/announce", b"info": info})


def magnet(h: str = HASH, name: str = "Some.Show.S01E01") -> str:
    return f"magnet:?xt=urn:btih:{h}&dn={name}&tr=http%3A%2F%2F127.0.0.1%3A6970%2Fannounce"


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    return user


@pytest.fixture
def qb(alice) -> Client:
    client = Client()
    answer = client.post(API + "auth/login", {"username": alice.email, "password": KEY})
    assert (answer.status_code, answer.content) == (200, b"Ok.")
    return client


def test_login_sets_a_sid_bound_to_the_user_and_audits(alice):
    client = Client()
    answer = client.post(API + "auth/login", {"username": "ALICE@example.com", "password": KEY})
    assert answer.content == b"Ok."
    cookie = answer.cookies["SID"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and len(cookie.value) == 32
    assert QbtSession.objects.get().user == alice
    assert AuditLog.objects.filter(action="qbittorrent.login", actor=alice).exists()
    assert client.get(API + "app/version").content == b"v4.5.2"


def test_wrong_credentials_answer_fails_with_200(alice):
    client = Client()
    for password in ["wrong", "correct horse battery staple", ""]:  # the account password is not accepted
        answer = client.post(API + "auth/login", {"username": alice.email, "password": password})
        assert (answer.status_code, answer.content) == (200, b"Fails.")
        assert "SID" not in answer.cookies
    assert not QbtSession.objects.exists()


def test_another_users_key_does_not_log_in_as_them(alice, other_user):
    answer = Client().post(API + "auth/login", {"username": other_user.email, "password": KEY})
    assert answer.content == b"Fails."


def test_repeated_failures_ban_the_ip(alice, settings):
    settings.QBITTORRENT_MAX_AUTH_FAILS = 3
    client = Client(REMOTE_ADDR="10.9.8.7")
    for _ in range(3):
        assert client.post(API + "auth/login", {"username": alice.email, "password": "x"}).content == b"Fails."
    banned = client.post(API + "auth/login", {"username": alice.email, "password": KEY})
    assert (banned.status_code, banned.content.decode()) == (403, BANNED)
    other_ip = Client(REMOTE_ADDR="10.9.8.8").post(API + "auth/login", {"username": alice.email, "password": KEY})
    assert other_ip.content == b"Ok."


def test_without_a_session_everything_is_forbidden(alice):
    client = Client()
    for path in ["app/version", "app/webapiVersion", "torrents/info", "sync/maindata"]:
        answer = client.get(API + path)
        assert (answer.status_code, answer.content) == (403, b"Forbidden")
    client.cookies["SID"] = "not-a-session"
    assert client.get(API + "torrents/info").status_code == 403


def test_logout_ends_the_session(qb):
    assert qb.post(API + "auth/logout").status_code == 200
    assert qb.get(API + "app/version").status_code == 403


def test_a_revoked_key_ends_its_sessions(qb, alice):
    from accounts.services import revoke_api_key

    revoke_api_key(alice, alice.api_keys.get())
    assert qb.get(API + "app/version").status_code == 403


def test_a_foreign_origin_is_unauthorized(qb):
    answer = qb.post(API + "torrents/pause", {"hashes": "all"}, HTTP_ORIGIN="http://evil.example")
    assert (answer.status_code, answer.content) == (401, b"Unauthorized")


def test_app_endpoints(qb, alice):
    assert qb.get(API + "app/webapiVersion").content == b"2.8.19"
    build = qb.get(API + "app/buildInfo").json()
    assert set(build) == {"bitness", "boost", "libtorrent", "openssl", "qt", "zlib"}
    prefs = qb.get(API + "app/preferences").json()
    plan = current_plan(alice)
    assert prefs["save_path"].endswith(f"/{alice.pk}")
    assert prefs["max_ratio_act"] == 0 and prefs["max_ratio"] == plan.seed_ratio_limit
    assert prefs["max_seeding_time"] == plan.seed_time_limit_minutes and prefs["web_ui_username"] == alice.email
    assert len(prefs) > 150  # the whole 4.5.2 set, not only what Sonarr reads


def test_actions_need_post(qb):
    answer = qb.get(API + "torrents/delete", {"hashes": HASH, "deleteFiles": "true"})
    assert (answer.status_code, answer.content) == (405, b"Method Not Allowed")


def test_add_magnet_creates_a_job_with_category_tags_and_limits(qb, alice):
    answer = qb.post(API + "torrents/add", {"urls": magnet(), "category": "tv", "tags": "a,b", "ratioLimit": "1.5",
                                            "seedingTimeLimit": "30", "sequentialDownload": "true"})
    assert answer.content == b"Ok."
    job = Job.objects.get(user=alice)
    meta = QbtTorrent.objects.get(job=job)
    assert (meta.category.name, meta.tags, meta.ratio_limit, meta.seeding_time_limit, meta.sequential) == (
        "tv", ["a", "b"], 1.5, 30, True)
    assert AuditLog.objects.filter(action="job.create", actor=alice).exists()
    row = qb.get(API + "torrents/info", {"category": "tv"}).json()[0]
    assert row["hash"] == HASH and row["state"] == "queuedDL" and row["tags"] == "a, b"
    assert row["ratio_limit"] == 1.5 and row["seeding_time_limit"] == 30 and row["seq_dl"] is True
    assert row["save_path"].endswith(f"/{alice.pk}/{job.pk}")
    assert qb.get(API + "torrents/info", {"category": "movies"}).json() == []
    assert qb.get(API + "torrents/categories").json() == {"tv": {"name": "tv", "savePath": ""}}


def test_add_several_urls_and_files_paused(qb, alice):
    other = "cd" * 20
    answer = qb.post(API + "torrents/add", {"urls": f"{magnet()}\n\n{other}", "paused": "true",
                                            "torrents": _upload(torrent_file())})
    assert answer.content == b"Ok."
    jobs = Job.objects.filter(user=alice)
    assert jobs.count() == 3 and set(jobs.values_list("status", flat=True)) == {Status.PAUSED}
    states = {r["name"]: r["state"] for r in qb.get(API + "torrents/info").json()}
    assert set(states.values()) == {"pausedDL"}


def _upload(data: bytes, name: str = "x.torrent"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/x-bittorrent")


def test_refused_adds_answer_fails(qb, alice, settings):
    assert qb.post(API + "torrents/add", {"urls": "not a magnet"}).content == b"Fails."
    assert qb.post(API + "torrents/add", {}).content == b"Fails."
    assert qb.post(API + "torrents/add", {"urls": magnet()}).content == b"Ok."
    assert qb.post(API + "torrents/add", {"urls": magnet()}).content == b"Fails."  # already there
    alice.accepted_policy_version = 0
    alice.save()
    assert qb.post(API + "torrents/add", {"urls": magnet("ef" * 20)}).content == b"Fails."  # the AUP gate
    assert Job.objects.filter(user=alice).count() == 1


def test_a_bad_torrent_file_is_415(qb):
    answer = qb.post(API + "torrents/add", {"torrents": _upload(b"garbage", "x.torrent")})
    assert (answer.status_code, answer.content) == (415, b"Error: 'x.torrent' is not a valid torrent file.")


def test_blocked_torrents_are_refused(qb, alice, admin_user):
    from downloads.services import block_info_hash

    block_info_hash(admin_user, HASH)
    assert qb.post(API + "torrents/add", {"urls": magnet()}).content == b"Fails."
    assert not Job.objects.filter(user=alice).exists()


def test_properties_files_trackers_of_a_job(qb, alice):
    job = JobFactory(user=alice, status=Status.DOWNLOADING, size_bytes=3000, progress=0.5, downloaded_bytes=1500,
                     download_rate=100, eta_seconds=15)
    JobFileFactory(job=job, path="show/e01.mkv", size_bytes=1000, completed_bytes=1000, index=0)
    JobFileFactory(job=job, path="show/e02.mkv", size_bytes=2000, completed_bytes=500, index=1)
    h = job.info_hash
    props = qb.get(API + "torrents/properties", {"hash": h}).json()
    assert props["hash"] == h and props["total_size"] == 3000 and props["save_path"].endswith(f"/{job.pk}")
    files = qb.get(API + "torrents/files", {"hash": h}).json()
    assert [(f["name"], f["size"], f["progress"]) for f in files] == [("show/e01.mkv", 1000, 1.0),
                                                                      ("show/e02.mkv", 2000, 0.25)]
    trackers = qb.get(API + "torrents/trackers", {"hash": h}).json()
    assert [t["url"] for t in trackers][:3] == ["** [DHT] **", "** [PeX] **", "** [LSD] **"]
    row = qb.get(API + "torrents/info", {"hashes": h}).json()[0]
    assert row["content_path"] == row["save_path"] + "/show"
    assert (row["state"], row["dlspeed"], row["eta"], row["amount_left"]) == ("downloading", 100, 15, 1500)


def test_unknown_and_foreign_hashes_are_not_found(qb, alice, other_user):
    theirs = JobFactory(user=other_user)
    for h in ["ff" * 20, theirs.info_hash, "nothex"]:
        for path in ["torrents/properties", "torrents/files", "torrents/trackers"]:
            answer = qb.get(API + path, {"hash": h})
            assert (answer.status_code, answer.content) == (404, b"Not Found")
    assert qb.get(API + "torrents/properties").status_code == 400
    assert qb.get(API + "torrents/info", {"hashes": theirs.info_hash}).json() == []
    qb.post(API + "torrents/delete", {"hashes": theirs.info_hash, "deleteFiles": "true"})
    qb.post(API + "torrents/pause", {"hashes": "all"})
    theirs.refresh_from_db()
    assert theirs.status == Status.QUEUED


def test_pause_resume_and_delete(qb, alice):
    job = JobFactory(user=alice, status=Status.DOWNLOADING)
    assert qb.post(API + "torrents/pause", {"hashes": job.info_hash}).status_code == 200
    job.refresh_from_db()
    assert job.status == Status.PAUSED
    assert qb.post(API + "torrents/resume", {"hashes": job.info_hash}).status_code == 200
    job.refresh_from_db()
    assert job.status in (Status.QUEUED, Status.STARTING)
    assert qb.post(API + "torrents/delete", {"hashes": job.info_hash}).status_code == 400  # deleteFiles required
    assert qb.post(API + "torrents/delete", {"hashes": job.info_hash, "deleteFiles": "false"}).status_code == 200
    job.refresh_from_db()
    assert job.status == Status.CANCELLED  # kept in Flotilla with its files, gone from the client's view
    assert qb.get(API + "torrents/info").json() == []
    gone = JobFactory(user=alice, status=Status.COMPLETED)
    qb.post(API + "torrents/delete", {"hashes": gone.info_hash, "deleteFiles": "true"})
    assert not Job.objects.filter(pk=gone.pk).exists()


def test_categories_and_tags(qb, alice):
    assert qb.post(API + "torrents/createCategory", {"category": "tv", "savePath": "/data/tv"}).status_code == 200
    dup = qb.post(API + "torrents/createCategory", {"category": "tv"})
    assert (dup.status_code, dup.content) == (409, b"Unable to create category")
    empty = qb.post(API + "torrents/createCategory", {"category": ""})
    assert (empty.status_code, empty.content) == (400, b"Category cannot be empty")
    assert qb.post(API + "torrents/editCategory", {"category": "zz", "savePath": "/x"}).status_code == 409
    assert qb.post(API + "torrents/editCategory", {"category": "tv", "savePath": "/y"}).status_code == 200
    assert qb.get(API + "torrents/categories").json() == {"tv": {"name": "tv", "savePath": "/y"}}
    job = JobFactory(user=alice)
    bad = qb.post(API + "torrents/setCategory", {"hashes": job.info_hash, "category": "nope"})
    assert (bad.status_code, bad.content) == (409, b"Incorrect category name")
    qb.post(API + "torrents/setCategory", {"hashes": job.info_hash, "category": "tv"})
    qb.post(API + "torrents/addTags", {"hashes": job.info_hash, "tags": "x,y"})
    qb.post(API + "torrents/removeTags", {"hashes": job.info_hash, "tags": "x"})
    row = qb.get(API + "torrents/info").json()[0]
    assert (row["category"], row["tags"]) == ("tv", "y")
    assert sorted(qb.get(API + "torrents/tags").json()) == ["x", "y"]
    qb.post(API + "torrents/removeCategories", {"categories": "tv\nzz"})
    assert qb.get(API + "torrents/categories").json() == {}
    assert qb.get(API + "torrents/info").json()[0]["category"] == ""


def test_share_limits_stay_within_the_plan(qb, alice):
    plan = current_plan(alice)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 2.0, 120
    plan.save()
    job = JobFactory(user=alice)
    missing = qb.post(API + "torrents/setShareLimits", {"hashes": job.info_hash, "ratioLimit": "1"})
    assert missing.status_code == 400
    qb.post(API + "torrents/setShareLimits", {"hashes": job.info_hash, "ratioLimit": "5", "seedingTimeLimit": "60"})
    row = qb.get(API + "torrents/info").json()[0]
    assert (row["ratio_limit"], row["seeding_time_limit"]) == (5, 60)
    assert (row["max_ratio"], row["max_seeding_time"]) == (2.0, 60)  # the plan caps the ratio
    qb.post(API + "torrents/setShareLimits", {"hashes": job.info_hash, "ratioLimit": "-1", "seedingTimeLimit": "-1"})
    row = qb.get(API + "torrents/info").json()[0]
    assert (row["max_ratio"], row["max_seeding_time"]) == (2.0, 120)  # "no limit" is the plan's


def test_queue_priorities_answer_like_qbittorrent_without_queueing(qb, alice):
    job = JobFactory(user=alice)
    answer = qb.post(API + "torrents/topPrio", {"hashes": job.info_hash})
    assert (answer.status_code, answer.content) == (409, b"Torrent queueing must be enabled")


def test_states_follow_job_status(qb, alice):
    cases = {
        Status.QUEUED: "queuedDL", Status.FETCHING_METADATA: "metaDL", Status.DOWNLOADING: "stalledDL",
        Status.SEEDING: "stalledUP", Status.TRANSFERRING: "moving", Status.PAUSED: "pausedDL",
        Status.FAILED: "error", Status.COMPLETED: "pausedUP",
    }
    for status in cases:
        JobFactory(user=alice, status=status, name=status, progress=1.0 if status == Status.COMPLETED else 0.2)
    seen = {r["name"]: r["state"] for r in qb.get(API + "torrents/info").json()}
    assert seen == {str(k): v for k, v in cases.items()}
    completed = {r["name"] for r in qb.get(API + "torrents/info", {"filter": "completed"}).json()}
    assert completed == {"seeding", "completed"}  # qBittorrent: every *UP state is complete
    assert {r["name"] for r in qb.get(API + "torrents/info", {"filter": "paused"}).json()} == {"paused", "completed"}


def test_sync_maindata_full_then_deltas(qb, alice):
    job = JobFactory(user=alice, status=Status.DOWNLOADING)
    full = qb.get(API + "sync/maindata", {"rid": 0}).json()
    assert full["full_update"] is True and set(full["torrents"]) == {job.info_hash}
    assert "hash" not in full["torrents"][job.info_hash]
    same = qb.get(API + "sync/maindata", {"rid": full["rid"]}).json()
    assert set(same) <= {"rid", "server_state"} and same["rid"] == full["rid"] + 1
    Job.objects.filter(pk=job.pk).update(progress=0.5, download_rate=10)
    QbtCategory.objects.create(user=alice, name="tv")
    step = qb.get(API + "sync/maindata", {"rid": same["rid"]}).json()
    changed = step["torrents"][job.info_hash]
    assert (changed["progress"], changed["dlspeed"], changed["state"]) == (0.5, 10, "downloading")
    assert "name" not in changed and "hash" not in changed  # only what changed
    assert step["categories"] == {"tv": {"name": "tv", "savePath": ""}}
    job.delete()
    gone = qb.get(API + "sync/maindata", {"rid": step["rid"]}).json()
    assert gone["torrents_removed"] == [job.info_hash]
    unknown = qb.get(API + "sync/maindata", {"rid": 999}).json()
    assert unknown["full_update"] is True


def test_transfer_info(qb, alice):
    JobFactory(user=alice, status=Status.DOWNLOADING, download_rate=7, downloaded_bytes=70)
    info = qb.get(API + "transfer/info").json()
    assert (info["dl_info_speed"], info["dl_info_data"]) == (7, 70)


def test_unknown_endpoint_is_a_plain_404(qb):
    answer = qb.get(API + "nope/nope")
    assert (answer.status_code, answer.content) == (404, b"Not Found")


def test_settings_page_shows_how_to_connect(alice, client):
    client.force_login(alice)
    QbtCategory.objects.create(user=alice, name="books")
    page = client.get("/qbittorrent/")
    assert page.status_code == 200
    assert alice.email.encode() in page.content and b"/qbittorrent" in page.content and b"books" in page.content
    client.post("/qbittorrent/", {"category": "books", "backend": "seedr"})
    assert QbtCategory.objects.get(name="books").backend == "seedr"
    client.post("/qbittorrent/", {"category": "books", "backend": "server:999"})
    assert QbtCategory.objects.get(name="books").backend == "seedr"  # not one of the user's servers


def test_the_engine_seeds_to_the_tighter_limit_in_the_plans_convention(alice):
    from downloads.qbittorrent_api.services import seeding_limits

    plan = current_plan(alice)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 0, 0  # the plan asks for no seeding limit
    job = JobFactory(user=alice)
    assert seeding_limits(job, plan) == (0, 0)
    QbtTorrent.objects.create(job=job, ratio_limit=-1, seeding_time_limit=-1)
    assert seeding_limits(Job.objects.get(pk=job.pk), plan) == (0, 0)  # never -1: that would end seeding at once
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 1.0, 60
    QbtTorrent.objects.filter(job=job).update(ratio_limit=0.5, seeding_time_limit=600)
    assert seeding_limits(Job.objects.get(pk=job.pk), plan) == (0.5, 60)
