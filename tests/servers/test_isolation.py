"""Isolation matrix for every servers endpoint: another user's server or torrent is a 404 and stays untouched,
lists never show it; admins see every server."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from accounts.models import AuditLog
from downloads.models import Job
from servers import clients
from servers.clients.base import State
from servers.models import TorrentServer
from tests.servers.conftest import seed_to, server_for
from tests.servers.daemons import wait_until
from tests.servers.factories import TorrentServerFactory

SERVER_API = [
    ("get", "/api/v1/servers/{server}/", None),
    ("patch", "/api/v1/servers/{server}/", {"name": "mine now"}),
    ("put", "/api/v1/servers/{server}/", {"name": "mine now", "type": "rtorrent", "host": "h", "port": 1}),
    ("delete", "/api/v1/servers/{server}/", None),
    ("post", "/api/v1/servers/{server}/test/", None),
    ("get", "/api/v1/torrents/?server_id={server}", None),
    ("post", "/api/v1/torrents/", {"server_id": "{server}", "magnet": "magnet:?xt=urn:btih:" + "ab" * 20}),
]
TORRENT_API = [
    ("get", "/api/v1/torrents/{hash}/", None),
    ("delete", "/api/v1/torrents/{hash}/?delete_data=true", None),
    ("post", "/api/v1/torrents/{hash}/start/", {}),
    ("post", "/api/v1/torrents/{hash}/stop/", {}),
    ("post", "/api/v1/torrents/{hash}/delete/", {"delete_data": True}),
    ("post", "/api/v1/torrents/{hash}/adopt/", {}),
    # Naming the victim's server explicitly changes nothing.
    ("get", "/api/v1/torrents/{hash}/?server_id={server}", None),
    ("post", "/api/v1/torrents/{hash}/stop/", {"server_id": "{server}"}),
    ("post", "/api/v1/torrents/{hash}/adopt/", {"server_id": "{server}"}),
]


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _server_snapshot(pk):
    server = TorrentServer.objects.filter(pk=pk).first()
    return server and (server.name, server.updated_at, server.status, server.checked_at)


@pytest.fixture
def victim_server(other_user):
    return TorrentServerFactory(owner=other_user, name="mallory's box")


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "data"), SERVER_API, ids=[f"{m} {u}" for m, u, _ in SERVER_API])
def test_another_users_server_is_404_and_untouched(api_client, plan, victim_server, method, url, data):
    ids = {"server": victim_server.pk}
    before = (_server_snapshot(victim_server.pk), AuditLog.objects.count(), Job.objects.count())
    response = getattr(api_client, method)(_fill(url, ids), _fill(data, ids), format="json")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert (_server_snapshot(victim_server.pk), AuditLog.objects.count(), Job.objects.count()) == before


@pytest.mark.e2e
@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "data"), TORRENT_API, ids=[f"{m} {u}" for m, u, _ in TORRENT_API])
def test_another_users_torrent_is_404_and_untouched(request, api_client, plan, other_user, rtorrent, swarm,
                                                    method, url, data):
    theirs = server_for(rtorrent, other_user)
    # A torrent of its own per case: rtorrent erases asynchronously, so re-adding one hash at once may be lost.
    case = hashlib.sha1(request.node.callspec.id.encode()).hexdigest()[:8]
    record = swarm.publish(f"victims-{case}.bin", 100_000)
    with clients.connect(theirs) as client:
        client.add_torrent(record.torrent_bytes)
        # rtorrent loads in the background, then checks and downloads the 100 kB: wait until it has settled
        # as a seed, so any later change of state can only come from the request under test. The seeder also
        # dials it, so one failed dial from rtorrent's side cannot leave it waiting for the next announce.
        wait_until(lambda: client.list([record.info_hash]), "listed", 30)
        seed_to(swarm, record, rtorrent)
        wait_until(lambda: [t for t in client.list([record.info_hash]) if t.state == State.SEEDING], "seeding",
                   describe=lambda: client.list([record.info_hash]))
        state = State.SEEDING
    ids = {"server": theirs.pk, "hash": record.info_hash}
    try:
        before = (AuditLog.objects.count(), Job.objects.count())
        response = getattr(api_client, method)(_fill(url, ids), _fill(data, ids), format="json")
        assert response.status_code == 404, response.content
        assert (AuditLog.objects.count(), Job.objects.count()) == before
        with clients.connect(theirs) as client:
            assert client.get(record.info_hash, with_files=False).state == state
    finally:
        with clients.connect(theirs) as client:
            client.remove(record.info_hash, delete_data=True)


@pytest.mark.django_db
def test_pages_show_no_other_users_server(user, victim_server):
    client = Client()
    client.force_login(user)
    for url in ("/servers/", "/"):
        page = client.get(url)
        assert page.status_code == 200
        assert b"mallory&#x27;s box" not in page.content and b"mallory's box" not in page.content


@pytest.mark.django_db
def test_lists_show_only_own_servers_and_admins_see_all(api_client, user, other_user, admin_user, victim_server):
    mine = TorrentServerFactory(owner=user)
    assert [s["id"] for s in api_client.get("/api/v1/servers/").json()] == [mine.pk]
    body = api_client.get("/api/v1/torrents/").json()
    assert body["errors"] == [] or {e["server"]["id"] for e in body["errors"]} == {mine.pk}

    from rest_framework.test import APIClient

    admin = APIClient()
    admin.force_authenticate(admin_user)
    listed = admin.get("/api/v1/servers/").json()
    assert {s["id"] for s in listed} == {mine.pk, victim_server.pk}
    assert {s["owner"] for s in listed} == {user.email, other_user.email}
