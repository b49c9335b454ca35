"""Playing a file while the user's own server downloads it (real qbittorrent-nox and transmission-daemon on
127.0.0.1, a rate-limited loopback seeder): only bytes of pieces the server reports verified are sent, the
bytes of every range equal the source, a piece that does not come is a 408, and the server was asked to
fetch the file first (qBittorrent: sequential + first/last piece; Transmission 3.00: file priority high)."""

from __future__ import annotations

import hashlib
import time

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from downloads import services as jobs
from downloads.models import Status
from servers import clients
from streaming import stream
from tests.servers.conftest import drive, refreshed, seed_to, server_for
from tests.servers.daemons import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

PIECE = 64 * 1024
INTRO, MOVIE = 300_000, 8 << 20  # mid-piece start (the offset matters); over Transmission's 4 MB write cache
SLOW, FAST = 1024, 1 << 20  # bytes/s from the seeder: "stalled", then ~8 s for the whole torrent


def get(url, **headers):
    async def fetch():
        response = await AsyncClient().get(url, headers=headers)
        data = b"".join([c async for c in response.streaming_content]) if response.streaming else response.content
        return response, data

    return async_to_sync(fetch)()


def _source(record, path: str) -> bytes:
    return (record.save_path / path).read_bytes()


def _missing(server, info_hash: str, first: int, last: int) -> bool:
    """Whether any piece holding torrent bytes first..last is not verified on the server yet."""
    with clients.connect(server) as client:
        pieces = client.piece_states(info_hash)
    return not all(pieces[first // PIECE: last // PIECE + 1])


@pytest.mark.parametrize("kind", ["qbittorrent", "transmission"])
def test_a_file_plays_from_verified_pieces_while_the_server_downloads_it(kind, request, user, plan, swarm,
                                                                         settings, capsys):
    daemon = request.getfixturevalue(kind)
    server = server_for(daemon, user, remote_path=str(daemon.download_dir), local_path=str(daemon.download_dir))
    name = f"{kind[:2]}-stream"
    record = swarm.publish(name, {"intro.bin": INTRO, "movie.mp4": MOVIE}, upload_limit=SLOW, piece_size=PIECE)
    movie = _source(record, f"{name}/movie.mp4")
    job = jobs.add_torrent(user, record.torrent_bytes, backend=server.backend_name)
    drive()
    seed_to(swarm, record, daemon)
    wait_until(lambda: (drive(), refreshed(job).status == Status.DOWNLOADING and job.files.count() == 2)[1],
               "downloading with its files listed", 60)
    jobfile = job.files.get(path=f"{name}/movie.mp4")
    url = stream.stream_url(user.pk, jobfile)

    # The seeder trickles: a piece in the middle does not come within STREAM_TIMEOUT.
    settings.STREAM_TIMEOUT = 2
    began = time.monotonic()
    response, _ = get(url, Range="bytes=1500000-1600000")
    assert response.status_code == 408 and response.json()["code"] == "stream_timeout"
    assert 1.5 < time.monotonic() - began < 10
    assert stream.active_streams(user.pk) == 0

    # The server was asked to fetch this file first, in order.
    with clients.connect(server) as client:
        if kind == "qbittorrent":
            row = client._qb.torrents_info(torrent_hashes=record.info_hash)[0]
            assert row["seq_dl"] is True and row["f_l_piece_prio"] is True
            priorities = {f["index"]: f["priority"] for f in client._qb.torrents_files(torrent_hash=record.info_hash)}
            assert priorities[jobfile.index] == 7
        else:
            fields = client._rpc().get_torrents(ids=[record.info_hash], arguments=["priorities"])[0].fields
            assert fields["priorities"][jobfile.index] == 1  # TR_PRI_HIGH

    settings.STREAM_TIMEOUT = 30
    swarm.seeder.set_upload_limit(record.info_hash, FAST)
    asked = [(MOVIE - 100_000, MOVIE - 1), (1_000_000, 1_400_000), (5_000_000, 5_300_000), (2_000_000, 2_000_000)]
    waited, took = [], []
    for first, last in asked:
        waited.append(_missing(server, record.info_hash, INTRO + first, INTRO + last))
        began = time.monotonic()
        response, data = get(url, Range=f"bytes={first}-{last}")
        took.append(round(time.monotonic() - began, 2))
        assert response.status_code == 206, response.content[:200]
        assert response["Content-Range"] == f"bytes {first}-{last}/{MOVIE}"
        assert response["X-Stream-Source"] == "pieces"
        assert data == movie[first:last + 1]
    assert any(waited), "every range was already there: nothing was streamed while downloading"
    with capsys.disabled():
        print(f"\n{kind}: ranges {asked} had missing pieces {waited}, answered in {took} s")

    response, data = get(url)  # the whole file, read as the server verifies it
    assert response.status_code == 200 and hashlib.sha256(data).digest() == hashlib.sha256(movie).digest()
    assert stream.active_streams(user.pk) == 0
    if kind == "qbittorrent":  # asked once per request, and toggles: still on after five requests
        with clients.connect(server) as client:
            row = client._qb.torrents_info(torrent_hashes=record.info_hash)[0]
        assert row["seq_dl"] is True and row["f_l_piece_prio"] is True

    # Completed and brought home: served from DATA_DIR, even once the server dropped the torrent and its data.
    wait_until(lambda: (drive(), refreshed(job).status == Status.COMPLETED)[1], "delivered", 60)
    with clients.connect(server) as client:
        client.remove(record.info_hash, delete_data=True)
    wait_until(lambda: not (daemon.download_dir / name).exists(), "data deleted on the server", 30)
    response, data = get(url, Range="bytes=100-")
    assert response.status_code == 206 and data == movie[100:] and "X-Stream-Source" not in response


@pytest.mark.parametrize(("kind", "how"), [("rtorrent", "torrent"), ("transmission", "magnet")])
def test_without_piece_state_or_hashes_only_a_completed_file_plays(kind, how, request, user, plan, swarm):
    """rTorrent reports no piece state here; Transmission gives no piece hashes over its RPC, so a magnet job's
    pieces cannot be checked on disk: both play a file once the server has all of it (from the mapped disk,
    before Flotilla brings it home)."""
    daemon = request.getfixturevalue(kind)
    server = server_for(daemon, user, remote_path=str(daemon.download_dir), local_path=str(daemon.download_dir))
    record = swarm.publish(f"{kind[:2]}-{how}-play", {"movie.mp4": 1 << 20}, upload_limit=SLOW)
    if how == "magnet":
        job = jobs.add_magnet(user, record.magnet, backend=server.backend_name)
    else:
        job = jobs.add_torrent(user, record.torrent_bytes, backend=server.backend_name)
    drive()
    seed_to(swarm, record, daemon)
    wait_until(lambda: (drive(), refreshed(job).status == Status.DOWNLOADING and job.files.exists())[1],
               "downloading with its files listed", 60)
    url = stream.stream_url(user.pk, job.files.get())
    response, _ = get(url, Range="bytes=0-99")
    assert response.status_code == 409 and response.json()["code"] == "not_ready"

    swarm.seeder.set_upload_limit(record.info_hash, FAST)
    with clients.connect(server) as client:
        remote = client
    wait_until(lambda: remote.get(record.info_hash, with_files=False).complete, "complete on the server", 60)
    response, data = get(url, Range="bytes=1000-")
    assert response.status_code == 206 and response["X-Stream-Source"] == "pieces"
    assert data == _source(record, f"{record.name}/movie.mp4")[1000:]
    assert refreshed(job).status == Status.DOWNLOADING  # not brought home yet: read from the mapped disk
