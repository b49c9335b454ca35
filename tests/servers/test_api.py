"""The servers API: CRUD with a write-only password, the connection test, adding by magnet / URL / upload,
the aggregated torrents view across the three daemons at once (one stopped mid-test), and torrent actions."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accounts.models import AuditLog
from downloads.models import Job, Status
from servers import clients
from servers.clients import State
from servers.models import TorrentServer
from tests.downloads.factories import JobFactory
from tests.servers import daemons
from tests.servers.conftest import drive, seed_to, server_for
from tests.servers.daemons import wait_until
from tests.servers.factories import TorrentServerFactory

NEW = {"name": "Seedbox", "type": "transmission", "host": "192.168.1.20", "port": 9091, "username": "me",
       "password": "hunter2-long"}


@pytest.mark.django_db
def test_create_keeps_the_password_write_only_and_audits(api_client, user):
    response = api_client.post("/api/v1/servers/", NEW, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "password" not in body and body["has_password"] is True
    assert body["status"] == "unknown" and body["address"] == "http://192.168.1.20:9091/transmission/rpc"
    server = TorrentServer.objects.get(pk=body["id"])
    assert server.password == "hunter2-long" and server.owner == user
    assert AuditLog.objects.filter(action="server.create", target_id=str(server.pk)).exists()
    assert "hunter2" not in str(list(AuditLog.objects.values_list("metadata", flat=True)))
    listed = api_client.get("/api/v1/servers/").json()
    assert [s["id"] for s in listed] == [server.pk] and "password" not in listed[0]


@pytest.mark.django_db
def test_update_with_a_blank_password_keeps_it_and_new_settings_reset_the_status(api_client, user):
    server = TorrentServerFactory(owner=user, password="kept-secret", status="error", failures=3)
    response = api_client.patch(f"/api/v1/servers/{server.pk}/", {"password": "", "port": 9092}, format="json")
    assert response.status_code == 200
    server.refresh_from_db()
    assert server.password == "kept-secret" and server.port == 9092
    assert server.status == "unknown" and server.failures == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "field"), [
    ({**NEW, "host": ""}, "host"),
    ({**NEW, "port": 70000}, "port"),
    ({**NEW, "type": "utorrent"}, "type"),
    ({**NEW, "type": "rtorrent", "transport": "scgi", "host": "", "port": None, "socket_path": "rel/rpc.sock"},
     "socket_path"),
    ({**NEW, "remote_path": "/downloads"}, "local_path"),
    ({**NEW, "rpc_path": "transmission/rpc"}, "rpc_path"),
])
def test_invalid_settings_are_refused_field_by_field_and_nothing_is_created(api_client, data, field):
    response = api_client.post("/api/v1/servers/", data, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not TorrentServer.objects.exists()


@pytest.mark.django_db
def test_names_are_unique_per_user(api_client, user, other_user):
    TorrentServerFactory(owner=other_user, name="Seedbox")  # another user's name does not count
    assert api_client.post("/api/v1/servers/", NEW, format="json").status_code == 201
    response = api_client.post("/api/v1/servers/", NEW, format="json")
    assert response.status_code == 409 and response.json()["code"] == "duplicate"


@pytest.mark.django_db
def test_deleting_a_server_fails_its_unfinished_jobs(api_client, user):
    server = TorrentServerFactory(owner=user)
    running = JobFactory(user=user, backend=server.backend_name, status=Status.DOWNLOADING)
    done = JobFactory(user=user, backend=server.backend_name, status=Status.COMPLETED)
    assert api_client.delete(f"/api/v1/servers/{server.pk}/").status_code == 204
    assert Job.objects.get(pk=running.pk).reason_code == "server_deleted"
    assert Job.objects.get(pk=done.pk).status == Status.COMPLETED
    assert AuditLog.objects.filter(action="server.delete").exists()


@pytest.mark.django_db
def test_jobs_cannot_target_another_users_server(api_client, plan, other_user):
    theirs = TorrentServerFactory(owner=other_user)
    magnet = f"magnet:?xt=urn:btih:{7:040x}"
    for backend in (theirs.backend_name, "server", "server:999999"):
        response = api_client.post("/api/v1/jobs/", {"magnet": magnet, "backend": backend}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "unknown_server"
    response = api_client.post("/api/v1/torrents/", {"server_id": theirs.pk, "magnet": magnet}, format="json")
    assert response.status_code == 404
    assert not Job.objects.exists()


@pytest.mark.e2e
@pytest.mark.django_db
def test_connection_test_with_right_and_wrong_credentials(api_client, user, qbittorrent):
    server = server_for(qbittorrent, user)
    body = api_client.post(f"/api/v1/servers/{server.pk}/test/").json()
    assert body["status"] == "connected" and body["client_version"] == "qBittorrent v4.5.2"
    assert body["latency_ms"] is not None

    api_client.patch(f"/api/v1/servers/{server.pk}/", {"password": "wrong-password"}, format="json")
    body = api_client.post(f"/api/v1/servers/{server.pk}/test/").json()
    assert body["status"] == "error" and body["status_code"] == "server_auth"
    assert "password" in body["status_message"]
    assert AuditLog.objects.filter(action="server.test", target_id=str(server.pk)).count() == 2


class _TorrentFiles(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def torrent_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TorrentFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _TorrentFiles.files
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
@pytest.mark.django_db
def test_add_by_magnet_url_and_upload_then_act_on_the_torrent(api_client, user, plan, rtorrent, swarm, settings,
                                                               torrent_site):
    server = server_for(rtorrent, user)
    by_magnet = swarm.publish("api-magnet.bin", 300_000)
    by_url = swarm.publish("api-url.bin", 400_000)
    by_file = swarm.publish("api-file.bin", 500_000)
    base, files = torrent_site
    files["/dl/by-url.torrent"] = by_url.torrent_bytes

    response = api_client.post("/api/v1/torrents/", {"server_id": server.pk, "url": f"{base}/dl/by-url.torrent"},
                               format="json")
    assert response.status_code == 400 and response.json()["code"] == "url_internal"  # loopback: refused
    settings.TORRENT_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the operator allows this network
    created = [
        api_client.post("/api/v1/torrents/", {"server_id": server.pk, "magnet": by_magnet.magnet}, format="json"),
        api_client.post("/api/v1/torrents/", {"server_id": server.pk, "url": f"{base}/dl/by-url.torrent"},
                        format="json"),
        api_client.post("/api/v1/torrents/", {"server_id": server.pk, "torrent": _upload(by_file)},
                        format="multipart"),
    ]
    assert [r.status_code for r in created] == [201, 201, 201], [r.json() for r in created]
    assert {r.json()["backend"] for r in created} == {server.backend_name}
    drive()
    for record in (by_magnet, by_url, by_file):
        seed_to(swarm, record, rtorrent)
    wait_until(lambda: (drive(), Job.objects.filter(status=Status.COMPLETED).count() == 3)[1], "three done", 60)

    detail = api_client.get(f"/api/v1/torrents/{by_file.info_hash}/").json()
    assert detail["server"]["id"] == server.pk and detail["complete"] and detail["files"][0]["path"] == by_file.name
    assert detail["job"] is not None and detail["external"] is False

    # A finished job's torrent still seeds on the server: the torrents API acts on it directly.
    stopped = api_client.post(f"/api/v1/torrents/{by_file.info_hash}/stop/", {}, format="json")
    assert stopped.status_code == 200 and stopped.json()["state"] == State.STOPPED
    started = api_client.post(f"/api/v1/torrents/{by_file.info_hash.upper()}/start/", {}, format="json")
    assert started.status_code == 200 and started.json()["state"] != State.STOPPED
    assert api_client.delete(f"/api/v1/torrents/{by_file.info_hash}/?delete_data=true").status_code == 204
    assert api_client.get(f"/api/v1/torrents/{by_file.info_hash}/").status_code == 404
    wait_until(lambda: not (rtorrent.download_dir / by_file.name).exists(), "data deleted", 60)
    assert AuditLog.objects.filter(action__in=["torrent.stop", "torrent.start", "torrent.delete"]).count() == 3


def _upload(record):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"{record.name}.torrent", record.torrent_bytes, "application/x-bittorrent")


@pytest.mark.e2e
@pytest.mark.django_db
def test_aggregated_listing_across_the_three_servers_with_one_stopped_mid_test(
        api_client, user, plan, transmission, qbittorrent, swarm, tmp_path):
    rtorrent = daemons.start_rtorrent(tmp_path / "rt-doomed")  # its own: this test stops it
    try:
        servers = {d.kind: server_for(d, user) for d in (transmission, rtorrent, qbittorrent)}
        records = {}
        for kind, server in servers.items():
            records[kind] = swarm.publish(f"agg-{kind}.bin", 200_000)
            with clients.connect(server) as client:
                client.add_torrent(records[kind].torrent_bytes, paused=True)

        body = api_client.get("/api/v1/torrents/").json()
        assert body["errors"] == []
        seen = {t["hash"]: t for t in body["results"]}
        for kind, server in servers.items():
            entry = seen[records[kind].info_hash]
            assert entry["server"] == {"id": server.pk, "name": server.name, "type": kind}
            assert entry["external"] is True and entry["name"] == records[kind].name
        only_qb = api_client.get(f"/api/v1/torrents/?server_id={servers['qbittorrent'].pk}").json()
        assert {t["server"]["type"] for t in only_qb["results"]} == {"qbittorrent"}

        rtorrent.stop()
        response = api_client.get("/api/v1/torrents/")
        assert response.status_code == 200
        body = response.json()
        kinds = {t["server"]["type"] for t in body["results"]}
        assert kinds == {"transmission", "qbittorrent"}
        assert [(e["server"]["id"], e["code"]) for e in body["errors"]] == [
            (servers["rtorrent"].pk, "server_unreachable")]
        stopped = TorrentServer.objects.get(pk=servers["rtorrent"].pk)
        assert stopped.status == "error" and stopped.retry_at is not None
    finally:
        rtorrent.stop()


def has_metadata(client, info_hash: str) -> bool:
    try:
        return client.get(info_hash, with_files=False).has_metadata
    except clients.TorrentNotFound:
        return False


@pytest.mark.e2e
@pytest.mark.django_db
def test_torrent_actions_on_a_job_go_through_the_job(api_client, user, plan, rtorrent, withhold):
    server = server_for(rtorrent, user)
    record = withhold("api-running.bin", 8 << 20)  # the swarm has half of it: still running meanwhile
    job = Job.objects.get(pk=api_client.post("/api/v1/torrents/", {"server_id": server.pk, "magnet": record.magnet},
                                             format="json").json()["id"])
    drive()
    record.connect(("127.0.0.1", rtorrent.peer_port))
    # rTorrent swaps a magnet's download for the torrent once it has the metadata (it is unlisted a moment):
    # act on the torrent it loaded.
    with clients.connect(server) as remote:
        wait_until(lambda: has_metadata(remote, record.info_hash), "rTorrent loaded the torrent")

    body = api_client.post(f"/api/v1/torrents/{record.info_hash}/stop/", {}, format="json").json()
    assert body["job"] == job.pk and body["state"] == State.STOPPED
    job.refresh_from_db()
    assert job.status == Status.PAUSED and job.reason_code == "paused_by_user"

    api_client.post(f"/api/v1/torrents/{record.info_hash}/start/", {}, format="json")
    job.refresh_from_db()
    assert job.status in (Status.STARTING, Status.QUEUED) and job.reason_code == "resumed"

    assert api_client.post(f"/api/v1/torrents/{record.info_hash}/delete/", {"delete_data": True},
                           format="json").status_code == 204
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert api_client.get(f"/api/v1/torrents/{record.info_hash}/").status_code == 404


# --- hostile input (issue 10) --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "field"), [
    ({**NEW, "host": "0" * 252}, "host"),
    ({**NEW, "host": "a" * 64 + ".example"}, "host"),
    ({**NEW, "host": "-bad-.example"}, "host"),
    ({**NEW, "host": "0"}, "host"),
    ({**NEW, "host": "300.1.1.1"}, "host"),
    ({**NEW, "host": "http://seedbox.example"}, "host"),
    ({**NEW, "host": "seed box"}, "host"),
    ({**NEW, "port": 0}, "port"),
    ({**NEW, "port": 2**70}, "port"),
    ({**NEW, "username": "Ǆoe"}, "username"),  # outside Latin-1: Transmission's basic auth cannot send it
    ({**NEW, "password": "пароль-long"}, "password"),
    ({**NEW, "username": "me:you"}, "username"),
    ({**NEW, "username": "me\r\nX-Injected: 1"}, "username"),
    ({**NEW, "rpc_path": "/rpc path"}, "rpc_path"),
    ({**NEW, "type": "rtorrent", "download_dir": '/data";execute=rm'}, "download_dir"),
])
def test_hostile_settings_are_refused_and_nothing_is_created(api_client, data, field):
    response = api_client.post("/api/v1/servers/", data, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid" and field in response.json()["errors"]
    assert not TorrentServer.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("host", "stored", "address"), [
    ("Bücher.Example", "xn--bcher-kva.example", "http://xn--bcher-kva.example:9091/transmission/rpc"),
    ("[::1]", "::1", None),
    ("fe80::1", "fe80::1", None),
    ("10.0.0.7", "10.0.0.7", "http://10.0.0.7:9091/transmission/rpc"),
    ("seedbox.local.", "seedbox.local", "http://seedbox.local:9091/transmission/rpc"),
])
def test_hosts_are_stored_in_the_form_every_client_can_use(api_client, host, stored, address):
    body = api_client.post("/api/v1/servers/", {**NEW, "host": host}, format="json").json()
    assert body["host"] == stored
    assert address is None or body["address"] == address


@pytest.mark.django_db
def test_unicode_credentials_are_fine_where_the_client_sends_them_as_utf8(api_client):
    data = {**NEW, "type": "qbittorrent", "port": 8080, "username": "Ǆoe", "password": "пароль-long"}
    assert api_client.post("/api/v1/servers/", data, format="json").status_code == 201
    patch = api_client.patch(f"/api/v1/servers/{TorrentServer.objects.get().pk}/", {"type": "transmission"},
                             format="json")
    assert patch.status_code == 200  # the stored password is not re-sent; the username is checked by type
    assert api_client.patch(f"/api/v1/servers/{TorrentServer.objects.get().pk}/", {"username": "Ǆoe"},
                            format="json").status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("fields", [
    {"host": "0" * 252},
    {"host": "h\u00f4st.example"},
    {"username": "Ǆoe"},
    {"type": "rtorrent", "transport": "http", "host": "0" * 252},
    {"type": "qbittorrent", "host": "0" * 252},
])
def test_rows_saved_without_validation_are_reported_under_errors_never_a_500(api_client, user, fields):
    """Rows from before the validation (or written by the admin): each view names the server and goes on."""
    api_client.raise_request_exception = False
    bad = TorrentServerFactory(owner=user, **fields)
    listing = api_client.get("/api/v1/torrents/")
    assert listing.status_code == 200
    assert [(e["server"]["id"], e["code"]) for e in listing.json()["errors"]] == [
        (bad.pk, listing.json()["errors"][0]["code"])]
    assert listing.json()["errors"][0]["code"].startswith("server_")

    tested = api_client.post(f"/api/v1/servers/{bad.pk}/test/")
    assert tested.status_code == 200 and tested.json()["status"] == "error"

    for response in (api_client.get(f"/api/v1/torrents/{'a' * 40}/"),
                     api_client.post(f"/api/v1/torrents/{'a' * 40}/stop/", {}, format="json")):
        assert response.status_code == 502, response.content
        body = response.json()
        assert body["code"] == "server_unavailable" and body["errors"][0]["server"]["id"] == bad.pk


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["start", "stop", "adopt", "delete"])
@pytest.mark.parametrize("method", ["delete", "put", "patch", "get"])
def test_action_routes_accept_only_post(api_client, user, action, method):
    TorrentServerFactory(owner=user)
    response = getattr(api_client, method)(f"/api/v1/torrents/{'a' * 40}/{action}/")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "POST, OPTIONS"
    assert api_client.options(f"/api/v1/torrents/{'a' * 40}/{action}/")["Allow"] == "POST, OPTIONS"


@pytest.mark.django_db
def test_collection_and_detail_routes_advertise_only_their_methods(api_client):
    assert api_client.options("/api/v1/torrents/")["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert api_client.options(f"/api/v1/torrents/{'a' * 40}/")["Allow"] == "GET, DELETE, HEAD, OPTIONS"
    assert api_client.delete("/api/v1/torrents/").status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["1180591620717411303424", "-1", "²", "1.5", "abc"])
def test_server_id_filters_out_of_range_are_400(api_client, raw):
    response = api_client.get("/api/v1/torrents/", {"server_id": raw})
    assert response.status_code == 400 and response.json()["code"] == "invalid_filter"
    body = {"server_id": 1180591620717411303424, "magnet": "magnet:?xt=urn:btih:" + "a" * 40}
    response = api_client.post("/api/v1/torrents/", body, format="json")
    assert response.status_code == 400 and "server_id" in response.json()["errors"]


@pytest.mark.e2e
@pytest.mark.django_db
def test_delete_on_an_action_route_leaves_the_torrent_and_a_bad_row_does_not_hide_the_good_one(
        api_client, user, transmission, swarm):
    server = server_for(transmission, user)
    bad = TorrentServerFactory(owner=user, host="0" * 252)
    record = swarm.publish("method-confusion.bin", 100_000)
    with clients.connect(server) as client:
        client.add_torrent(record.torrent_bytes, paused=True)

    for action in ("stop", "start", "adopt"):
        response = api_client.delete(f"/api/v1/torrents/{record.info_hash}/{action}/")
        assert response.status_code == 405 and response["Allow"] == "POST, OPTIONS"
    with clients.connect(server) as client:
        assert client.get(record.info_hash, with_files=False).hash == record.info_hash

    body = api_client.get("/api/v1/torrents/").json()
    assert record.info_hash in [t["hash"] for t in body["results"]]  # (the daemon is shared by the module)
    assert {t["server"]["id"] for t in body["results"]} == {server.pk}
    assert [e["server"]["id"] for e in body["errors"]] == [bad.pk]
    detail = api_client.get(f"/api/v1/torrents/{record.info_hash}/")
    assert detail.status_code == 200 and detail.json()["server"]["id"] == server.pk
