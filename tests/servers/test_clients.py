"""Each client against its real daemon on 127.0.0.1: add by .torrent and by magnet, download from the loopback
swarm to completion (checked byte for byte), stop/start, erase with and without data, connection checks."""

from __future__ import annotations

import pytest

from downloads.swarm import sha256_file
from servers import clients
from servers.clients import ClientError, State, TorrentNotFound
from servers.models import TorrentServer
from tests.servers import daemons
from tests.servers.conftest import seed_to
from tests.servers.daemons import wait_until

KINDS = ["transmission", "rtorrent", "qbittorrent"]
VERSIONS = {"transmission": "Transmission 3.00", "rtorrent": "rTorrent 0.9.8", "qbittorrent": "qBittorrent v4.5.2"}


def client_for(daemon: daemons.Daemon, **extra) -> clients.TorrentClient:
    return clients.build(TorrentServer(**daemon.server_fields(**extra)))


def listed(client, info_hash):
    return next((t for t in client.list() if t.hash == info_hash), None)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_download_by_file_and_magnet_then_stop_start_and_erase(kind, request, swarm):
    daemon = request.getfixturevalue(kind)
    client = client_for(daemon)
    single = swarm.publish(f"{kind}-single.bin", 2 << 20)
    folder = swarm.publish(f"{kind}-album", {"01.flac": 1 << 20, "art/cover.jpg": 300_000})

    client.add_torrent(single.torrent_bytes)
    client.add_magnet(folder.magnet)
    wait_until(lambda: {single.info_hash, folder.info_hash} <= {t.hash for t in client.list()}, "both listed", 60)
    for record in (single, folder):
        seed_to(swarm, record, daemon)
    # Complete and settled: rTorrent re-hashes a download once it completes (progress drops while it checks),
    # and leaves a magnet out of a listing for a moment, when it swaps the magnet's download for the torrent.
    wait_until(lambda: all((t := listed(client, r.info_hash)) is not None and t.complete and t.state == State.SEEDING
                           for r in (single, folder)), "both complete and seeding", 120)

    for record in (single, folder):
        torrent = client.get(record.info_hash)
        assert torrent.progress == pytest.approx(1.0)
        assert torrent.size == torrent.done == record.size
        assert {f.path: f.size for f in torrent.files} == record.sizes
        assert all(f.done == f.size for f in torrent.files)
        for path, digest in record.files.items():  # byte for byte, where the server says it saved them
            assert sha256_file(f"{torrent.save_path}/{path}") == digest

    client.stop(single.info_hash)
    wait_until(lambda: listed(client, single.info_hash).state == State.STOPPED, "stopped", 60)
    client.start(single.info_hash)
    wait_until(lambda: listed(client, single.info_hash).state in (State.SEEDING, State.CHECKING, State.QUEUED),
               "started again", 60)

    client.remove(single.info_hash, delete_data=False)
    client.remove(folder.info_hash, delete_data=True)
    wait_until(lambda: not ({single.info_hash, folder.info_hash} & {t.hash for t in client.list()}), "erased", 60)
    assert (daemon.download_dir / single.name).is_file()  # erased without its data: the file stays
    wait_until(lambda: not (daemon.download_dir / folder.name).exists(), "folder data deleted", 60)
    with pytest.raises(TorrentNotFound):
        client.stop(single.info_hash)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["transmission", "qbittorrent"])
def test_check_with_right_and_wrong_credentials(kind, request):
    daemon = request.getfixturevalue(kind)
    info = client_for(daemon).check()
    assert info.version.startswith(VERSIONS[kind])
    assert info.latency_ms >= 0

    with pytest.raises(ClientError) as wrong:
        client_for(daemon, password="not-the-password").check()
    assert wrong.value.permanent and wrong.value.code == "server_auth"
    assert "password" in wrong.value.message


@pytest.mark.e2e
def test_rtorrent_over_http_rpc2_with_right_and_wrong_credentials(rtorrent):
    bridge = daemons.ScgiHttpBridge(rtorrent)
    try:
        server = TorrentServer(**bridge.server_fields())
        assert clients.build(server).check().version == VERSIONS["rtorrent"]
        assert clients.build(server).list() is not None

        server.password = "not-the-password"
        with pytest.raises(ClientError) as wrong:
            clients.build(server).check()
        assert wrong.value.permanent and wrong.value.code == "server_auth"

        server.password, server.rpc_path = bridge.password, "/nope"
        with pytest.raises(ClientError) as missing:
            clients.build(server).check()
        assert missing.value.code == "server_not_found"
    finally:
        bridge.close()


@pytest.mark.e2e
def test_rtorrent_over_scgi_tcp(tmp_path):
    port = daemons.free_port()
    with daemons.running("rtorrent", tmp_path, scgi_port=port):
        server = TorrentServer(type="rtorrent", transport="scgi", host="127.0.0.1", port=port)
        assert clients.build(server).check().version == VERSIONS["rtorrent"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_that_is_down_is_a_transient_error(kind, tmp_path):
    fields = {"type": kind, "host": "127.0.0.1", "port": daemons.free_port(), "username": "u", "password": "p"}
    if kind == "rtorrent":
        fields.update(transport="scgi", socket_path=str(tmp_path / "no.sock"))
    with pytest.raises(ClientError) as down:
        clients.build(TorrentServer(**fields)).list()
    assert not down.value.permanent
    assert down.value.code == "server_unreachable"
