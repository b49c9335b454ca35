"""Adding a job by an http(s) link to a .torrent: POST /api/v1/jobs/ {"url"}, for any backend.

The links are served by a real HTTP server on 127.0.0.1 (allowed through TORRENT_URL_ALLOWED_NETWORKS where
a test needs it); the .torrent files are real ones built by torf. The server records every request, so a
refusal "before fetching" is checked by the server never having been asked.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torf

from accounts.models import AuditLog
from downloads.models import Job, JobEvent, JobFile
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory
from tests.servers.factories import TorrentServerFactory

pytestmark = pytest.mark.django_db

MAGNET_HASH = "d" * 40
MAGNET = f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=Redirected+Magnet"


@dataclass
class Site:
    """A tiny real web site: path → (status, headers, body); every request path is recorded."""

    base: str = ""
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            site.requests.append(self.path)
            status, headers, body = site.routes.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serving() -> Iterator[Site]:
    """A site on 127.0.0.1 for the duration of the block (also used by tests/browser/test_add_by_url.py)."""
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def site() -> Iterator[Site]:
    """A site on 127.0.0.1. Internal, so refused unless a test allows it (see `allowed_site`)."""
    with serving() as site:
        yield site


@pytest.fixture
def allowed_site(site, settings) -> Site:
    settings.TORRENT_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return site


def build_torrent(tmp_path, name: str = "Indexer Pack") -> torf.Torrent:
    root = tmp_path / name
    (root / "disc").mkdir(parents=True)
    (root / "readme.txt").write_bytes(b"r" * 1500)
    (root / "disc" / "track01.flac").write_bytes(b"t" * 40_000)
    torrent = torf.Torrent(path=root, trackers=["http://127.0.0.1:6970/announce"], piece_size=16384)
    torrent.generate()
    return torrent


def post(api_client, payload: dict, **kwargs):
    return api_client.post("/api/v1/jobs/", payload, format=kwargs.pop("format", "json"), **kwargs)


def assert_nothing_created() -> None:
    assert not Job.objects.exists()
    assert not JobEvent.objects.exists()
    assert not AuditLog.objects.filter(action="job.create").exists()


def test_a_torrent_link_becomes_a_job_with_its_hash_and_files(api_client, user, allowed_site, tmp_path):
    torrent = build_torrent(tmp_path)
    allowed_site.routes["/dl/42.torrent?passkey=s3cr3tpasskey"] = (
        200, {"Content-Type": "application/x-bittorrent"}, torrent.dump())
    url = f"{allowed_site.base}/dl/42.torrent?passkey=s3cr3tpasskey"

    response = post(api_client, {"url": url})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "Indexer Pack" and body["status"] == "queued" and body["backend"] == "engine"
    job = Job.objects.for_user(user).get(pk=body["id"])
    assert job.info_hash == torrent.infohash
    assert job.size_bytes == 41_500
    assert sorted(JobFile.objects.filter(job=job).values_list("path", "size_bytes")) == [
        ("Indexer Pack/disc/track01.flac", 40_000), ("Indexer Pack/readme.txt", 1500)]
    assert job.torrent and not job.magnet  # the fetched bytes are kept (encrypted) like an upload's
    assert allowed_site.requests == ["/dl/42.torrent?passkey=s3cr3tpasskey"]
    audit = AuditLog.objects.get(action="job.create")
    assert audit.actor == user and audit.target_id == str(job.pk)
    assert audit.metadata == {"source": "url", "backend": "engine", "host": "127.0.0.1"}
    assert "s3cr3tpasskey" not in str(AuditLog.objects.values_list("metadata", flat=True))
    assert "s3cr3tpasskey" not in response.content.decode()


def test_a_link_that_redirects_to_a_magnet_makes_a_magnet_job(api_client, user, allowed_site):
    allowed_site.routes["/get/7"] = (302, {"Location": MAGNET}, b"")

    response = post(api_client, {"url": f"{allowed_site.base}/get/7"})

    assert response.status_code == 201, response.json()
    job = Job.objects.for_user(user).get(pk=response.json()["id"])
    assert job.name == "Redirected Magnet"
    assert job.info_hash == MAGNET_HASH and job.magnet == MAGNET and not job.torrent
    assert AuditLog.objects.get(action="job.create").metadata["source"] == "url"


def test_the_link_works_for_another_backend_too(api_client, user, allowed_site, tmp_path):
    PlanAssignmentFactory(user=user, plan=PlanFactory())
    server = TorrentServerFactory(owner=user)
    torrent = build_torrent(tmp_path)
    allowed_site.routes["/a.torrent"] = (200, {}, torrent.dump())

    response = post(api_client, {"url": f"{allowed_site.base}/a.torrent", "backend": f"server:{server.pk}"})

    assert response.status_code == 201, response.json()
    assert response.json()["backend"] == f"server:{server.pk}"
    assert Job.objects.get().info_hash == torrent.infohash


def test_an_internal_link_is_refused_by_default_and_creates_nothing(api_client, site, tmp_path):
    site.routes["/a.torrent"] = (200, {}, build_torrent(tmp_path).dump())

    response = post(api_client, {"url": f"{site.base}/a.torrent"})

    assert response.status_code == 400
    assert response.json()["code"] == "url_internal"
    assert "127.0.0.1" in response.json()["detail"]
    assert site.requests == []
    assert_nothing_created()


def test_a_page_that_is_not_a_torrent_is_refused_like_an_upload(api_client, allowed_site):
    html = b"<!doctype html><title>Login required</title>"
    allowed_site.routes["/login"] = (200, {"Content-Type": "text/html"}, html)

    response = post(api_client, {"url": f"{allowed_site.base}/login"})

    assert response.status_code == 400
    upload = io.BytesIO(html)
    upload.name = "login.torrent"
    uploaded = post(api_client, {"torrent": upload}, format="multipart")
    assert response.json() == uploaded.json()
    assert response.json()["code"] == "torrent_invalid"
    assert "not a .torrent file" in response.json()["detail"]
    assert_nothing_created()


def test_an_http_error_from_the_link_is_a_502_and_creates_nothing(api_client, allowed_site):
    response = post(api_client, {"url": f"{allowed_site.base}/gone.torrent"})

    assert response.status_code == 502
    assert response.json()["code"] == "url_http_error"
    assert allowed_site.requests == ["/gone.torrent"]
    assert_nothing_created()


@pytest.mark.parametrize(("url", "code"), [
    ("ftp://example.com/a.torrent", "url_scheme"),
    ("file:///etc/passwd", "url_scheme"),
    ("http://user:pw@example.com/a.torrent", "url_invalid"),
    ("http://169.254.169.254/latest/meta-data/", "url_internal"),
])
def test_refused_links_keep_their_code(api_client, url, code):
    response = post(api_client, {"url": url})

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert_nothing_created()


@pytest.mark.parametrize(("payload", "says"), [
    ({}, "exactly one"),
    ({"url": ""}, "may not be blank"),
    ({"magnet": MAGNET, "url": "http://example.com/a.torrent"}, "exactly one"),
])
def test_not_exactly_one_source_is_a_400(api_client, payload, says):
    response = post(api_client, payload)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert says in str(response.json()["errors"])
    assert_nothing_created()


def test_a_file_and_a_link_together_are_a_400(api_client, allowed_site, tmp_path):
    data = build_torrent(tmp_path).dump()
    allowed_site.routes["/a.torrent"] = (200, {}, data)
    upload = io.BytesIO(data)
    upload.name = "a.torrent"

    response = post(api_client, {"torrent": upload, "url": f"{allowed_site.base}/a.torrent"}, format="multipart")

    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert allowed_site.requests == []
    assert_nothing_created()


def test_the_same_torrent_by_link_again_is_a_duplicate(api_client, allowed_site, tmp_path):
    allowed_site.routes["/a.torrent"] = (200, {}, build_torrent(tmp_path).dump())
    assert post(api_client, {"url": f"{allowed_site.base}/a.torrent"}).status_code == 201

    response = post(api_client, {"url": f"{allowed_site.base}/a.torrent"})

    assert response.status_code == 409 and response.json()["code"] == "duplicate"
    assert Job.objects.count() == 1


def test_a_torrent_over_the_plan_size_is_refused_after_fetching(api_client, user, allowed_site, tmp_path):
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_job_size_bytes=10_000))
    allowed_site.routes["/a.torrent"] = (200, {}, build_torrent(tmp_path).dump())

    response = post(api_client, {"url": f"{allowed_site.base}/a.torrent"})

    assert response.status_code == 403
    assert response.json()["code"] == "quota_exceeded" and response.json()["limit"] == "max_job_size_bytes"
    assert_nothing_created()


class TestRefusedBeforeFetching:
    """A user who may not add never makes Flotilla fetch anything: the site records no request."""

    @pytest.fixture
    def link(self, allowed_site, tmp_path) -> str:
        allowed_site.routes["/a.torrent"] = (200, {}, build_torrent(tmp_path).dump())
        return f"{allowed_site.base}/a.torrent"

    def test_policy_not_accepted(self, api_client, user, allowed_site, link):
        user.accepted_policy_version = 0
        user.save()

        response = post(api_client, {"url": link})

        assert response.status_code == 403 and response.json()["code"] == "policy_not_accepted"
        assert allowed_site.requests == []
        assert_nothing_created()

    def test_backend_not_in_the_plan(self, api_client, user, allowed_site, link):
        PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["engine"]))

        response = post(api_client, {"url": link, "backend": "seedr"})

        assert response.status_code == 403
        assert response.json()["code"] == "quota_exceeded" and response.json()["limit"] == "allowed_backends"
        assert allowed_site.requests == []
        assert_nothing_created()

    def test_storage_full(self, api_client, user, allowed_site, link):
        PlanAssignmentFactory(user=user, plan=PlanFactory(max_storage_bytes=1000))
        JobFactory(user=user, size_bytes=5000)

        response = post(api_client, {"url": link})

        assert response.status_code == 403 and response.json()["limit"] == "max_storage_bytes"
        assert allowed_site.requests == []
        assert Job.objects.count() == 1

    def test_someone_elses_server(self, api_client, other_user, allowed_site, link):
        server = TorrentServerFactory(owner=other_user)

        response = post(api_client, {"url": link, "backend": f"server:{server.pk}"})

        assert response.status_code == 400 and response.json()["code"] == "unknown_server"
        assert allowed_site.requests == []
        assert_nothing_created()
