"""The servers backend through the job spine, against real daemons: submit, one listing per server per sync,
progress and completion with JobFiles, delivery through the path mapping, pause/resume/cancel routed to the
right server, external torrents adopted, a dead server backed off without stopping the others."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from downloads import dispatch
from downloads import services as jobs
from downloads.models import EventKind, Job, JobEvent, Status
from downloads.swarm import make_payload, make_torrent, sha256_file, torrent_meta
from servers import backend, clients
from servers import services as servers
from servers.clients import State
from servers.models import TorrentServer
from tests.servers import daemons
from tests.servers.conftest import drive, refreshed, seed_to, server_for
from tests.servers.daemons import wait_until
from tests.servers.factories import TorrentServerFactory


def stalled_magnet(n: int) -> str:
    """A magnet nobody seeds: it stays in metadata on the server, as long as the test needs. (It names a
    tracker: rtorrent without DHT silently drops a magnet that has none.)"""
    return f"magnet:?xt=urn:btih:{n:040x}&dn=stalled-{n}&tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce"


def calls(server: TorrentServer) -> int:
    with clients.connect(server) as client:
        return client.calls


def list_through(monkeypatch, proxy) -> None:
    """The backend's clients, from here on, wrapped in `proxy(client)` (a replay of what a server listed)."""
    real_connect = clients.connect

    @contextlib.contextmanager
    def connect(server):
        with real_connect(server) as client:
            yield proxy(client)

    monkeypatch.setattr(clients, "connect", connect)


@pytest.mark.e2e
@pytest.mark.django_db
def test_torrent_job_on_rtorrent_completes_with_its_files(user, plan, rtorrent, swarm):
    server = server_for(rtorrent, user)
    album = swarm.publish("rt-album", {"01.flac": 1 << 20, "cd2/02.flac": 700_000})
    job = jobs.add_torrent(user, album.torrent_bytes, backend=server.backend_name)

    drive()
    assert refreshed(job).status == Status.DOWNLOADING and job.remote_id.startswith(f"server:{server.pk}:")
    seed_to(swarm, album, rtorrent)
    wait_until(lambda: (drive(), refreshed(job).status == Status.COMPLETED)[1], "job completed", 60)

    assert job.reason_code == "done_on_server" and job.progress == 1.0
    assert job.downloaded_bytes == job.size_bytes == album.size
    files = {f.path: (f.size_bytes, f.completed_bytes) for f in job.files.all()}
    assert files == {path: (size, size) for path, size in album.sizes.items()}
    statuses = list(JobEvent.objects.filter(job=job, kind=EventKind.STATUS).values_list("code", flat=True))
    assert statuses[0] == Status.STARTING and statuses[-1] == Status.COMPLETED


class CheckingAgain:
    """A real client whose listings say what rTorrent said in CI the moment a download completed (it re-hashes
    a finished torrent): checking, with every byte counted in the first listing — or already seeding there,
    for a check that begins between the two — and the count started over in the second, with the files."""

    def __init__(self, client, *, first_listing: State) -> None:
        self.client, self.first_listing = client, first_listing

    def list(self, hashes=None, *, with_files: bool = False):
        torrents = self.client.list(hashes, with_files=with_files)
        if with_files:
            return [dataclasses.replace(t, state=State.CHECKING, done=t.done // 4) for t in torrents]
        return [dataclasses.replace(t, state=self.first_listing) for t in torrents]

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.e2e
@pytest.mark.django_db
@pytest.mark.parametrize("first_listing", [State.CHECKING, State.SEEDING])
def test_a_job_is_not_finished_while_its_server_checks_the_data(user, plan, rtorrent, swarm, monkeypatch,
                                                                  first_listing):
    server = server_for(rtorrent, user)
    # A torrent of its own per case: the daemon outlives the test, and would still hold the last case's.
    album = swarm.publish(f"rt-checked-{first_listing}", {"01.flac": 1 << 20, "02.flac": 300_000})
    job = jobs.add_torrent(user, album.torrent_bytes, backend=server.backend_name)
    drive()
    seed_to(swarm, album, rtorrent)

    def on_server():
        with clients.connect(server) as client:
            return client.list([album.info_hash])[0]

    wait_until(lambda: on_server().state == State.SEEDING, "the download to finish on rTorrent", 60)
    list_through(monkeypatch, lambda client: CheckingAgain(client, first_listing=first_listing))
    drive()
    assert refreshed(job).status == Status.DOWNLOADING
    if first_listing == State.CHECKING:
        assert job.reason_code == "server_checking" and "checking the downloaded data" in job.reason

    monkeypatch.undo()  # the check passed
    drive()
    assert refreshed(job).status == Status.COMPLETED
    assert job.downloaded_bytes == job.size_bytes == album.size
    assert all(f.is_complete for f in job.files.all())


@pytest.mark.e2e
@pytest.mark.django_db
def test_magnet_job_on_qbittorrent_is_delivered_through_the_path_mapping(user, plan, qbittorrent, swarm, tmp_path):
    # The server's disk is "mounted" here under another path: a symlinked folder standing for the mount.
    mount = tmp_path / "mnt-qb"
    mount.symlink_to(qbittorrent.download_dir)
    server = server_for(qbittorrent, user, remote_path=str(qbittorrent.download_dir), local_path=str(mount))
    record = swarm.publish("qb-delivered", {"a.bin": 1 << 20, "sub/b.bin": 123_456})
    job = jobs.add_magnet(user, record.magnet, backend=server.backend_name)

    drive()
    seed_to(swarm, record, qbittorrent)
    wait_until(lambda: (drive(), refreshed(job).status == Status.COMPLETED)[1], "job delivered", 60)

    assert job.reason_code == "delivered"
    for path, digest in record.files.items():
        assert sha256_file(job.data_dir / path) == digest
    assert all(f.is_complete for f in job.files.all())
    codes = list(JobEvent.objects.filter(job=job, kind=EventKind.STATUS).values_list("code", flat=True))
    assert Status.FETCHING_METADATA in codes and Status.TRANSFERRING in codes


@pytest.mark.e2e
@pytest.mark.django_db
def test_pause_resume_cancel_reach_the_server_and_a_stop_there_is_mirrored(user, plan, rtorrent, withhold):
    server = server_for(rtorrent, user)
    record = withhold("rt-slow.bin", 8 << 20)  # the swarm has half of it: it is still running at the end
    job = jobs.add_torrent(user, record.torrent_bytes, backend=server.backend_name)
    drive()
    record.connect(("127.0.0.1", rtorrent.peer_port))
    with clients.connect(server) as client:
        remote = client  # the process's client for this server: what the backend uses
    wait_until(lambda: remote.get(record.info_hash, with_files=False).done > 0, "bytes on the server")

    jobs.pause_job(user, refreshed(job))
    wait_until(lambda: remote.get(record.info_hash, with_files=False).state == State.STOPPED, "stopped remotely")
    drive()
    assert refreshed(job).status == Status.PAUSED

    jobs.resume_job(user, job)
    wait_until(lambda: remote.get(record.info_hash, with_files=False).state == State.DOWNLOADING, "running")
    drive()
    assert refreshed(job).status == Status.DOWNLOADING

    remote.stop(record.info_hash)  # stopped by hand on the server
    drive()
    assert refreshed(job).status == Status.PAUSED and job.reason_code == "paused_on_server"
    remote.start(record.info_hash)
    drive()
    assert refreshed(job).status == Status.DOWNLOADING and job.reason_code == "resumed_on_server"

    jobs.cancel_job(user, job, delete_data=True)
    assert refreshed(job).status == Status.CANCELLED
    assert remote.list([record.info_hash]) == []
    wait_until(lambda: not (rtorrent.download_dir / record.name).exists(), "data deleted on the server", 60)


@pytest.mark.e2e
@pytest.mark.django_db
def test_one_listing_per_server_per_sync_whatever_the_number_of_jobs(user, plan, rtorrent, qbittorrent):
    rt, qb = server_for(rtorrent, user), server_for(qbittorrent, user)
    for n in range(1, 7):
        jobs.add_magnet(user, stalled_magnet(100 + n), backend=(rt if n % 2 else qb).backend_name)
    drive(2)
    assert Job.objects.filter(status=Status.FETCHING_METADATA).count() == 6

    before = {s.pk: calls(s) for s in (rt, qb)}
    assert dispatch.sync_running() == 2
    assert {s.pk: calls(s) - before[s.pk] for s in (rt, qb)} == {rt.pk: 1, qb.pk: 1}


@pytest.mark.e2e
@pytest.mark.django_db
def test_a_dead_server_backs_off_and_never_stops_the_others(user, plan, rtorrent):
    dead = TorrentServerFactory(owner=user, type="transmission", port=daemons.free_port())
    alive = server_for(rtorrent, user)
    doomed = jobs.add_magnet(user, stalled_magnet(201), backend=dead.backend_name)
    fine = jobs.add_magnet(user, stalled_magnet(202), backend=alive.backend_name)

    dispatch.dispatch_queued()
    assert refreshed(fine).status == Status.FETCHING_METADATA
    assert refreshed(doomed).status == Status.QUEUED and doomed.reason_code == "server_unreachable"
    assert doomed.next_attempt_at is not None  # the spine's backoff for the job
    dead.refresh_from_db()
    assert dead.status == TorrentServer.Status.ERROR and dead.failures == 1 and dead.retry_at
    assert "Cannot connect" in dead.status_message

    # A later job for the dead server waits with the reason instead of being submitted again.
    later = jobs.add_magnet(user, stalled_magnet(203), backend=dead.backend_name)
    dispatch.dispatch_queued()
    assert refreshed(later).status == Status.QUEUED and later.reason_code == "server_unreachable"
    assert dead.failures == TorrentServer.objects.get(pk=dead.pk).failures  # not contacted again
    before = calls(alive)
    dispatch.sync_running()
    assert calls(alive) == before + 1


@pytest.mark.e2e
@pytest.mark.django_db
def test_external_torrent_is_listed_then_adopted_and_finishes_as_a_job(user, plan, rtorrent, swarm):
    server = server_for(rtorrent, user)
    record = swarm.publish("rt-external.bin", 1 << 20)
    with clients.connect(server) as client:
        client.add_torrent(record.torrent_bytes)  # added by someone else, not through Flotilla
    seed_to(swarm, record, rtorrent)

    entry = next(t for t in servers.list_torrents(user).results if t["hash"] == record.info_hash)
    assert entry["external"] is True and entry["job"] is None and entry["server"]["id"] == server.pk

    job = servers.adopt(user, record.info_hash)
    assert job.backend == server.backend_name and job.status in (Status.DOWNLOADING, Status.FETCHING_METADATA)
    entry = next(t for t in servers.list_torrents(user).results if t["hash"] == record.info_hash)
    assert entry["external"] is False and entry["job"] == job.pk
    wait_until(lambda: (drive(), refreshed(job).status == Status.COMPLETED)[1], "adopted job completed", 30)
    assert job.files.get().path == record.name


@pytest.mark.e2e
@pytest.mark.django_db
def test_a_torrent_removed_on_the_server_fails_its_job(user, plan, rtorrent, monkeypatch):
    server = server_for(rtorrent, user)
    job = jobs.add_magnet(user, stalled_magnet(301), backend=server.backend_name)
    drive()
    drive()
    assert refreshed(job).status == Status.FETCHING_METADATA  # listed, or within the grace after the submit
    with clients.connect(server) as client:
        client.remove(f"{301:040x}", delete_data=False)
    drive()
    assert refreshed(job).status == Status.FETCHING_METADATA  # still within the grace: not failed yet
    Job.objects.filter(pk=job.pk).update(started_at=job.started_at - dt.timedelta(minutes=1))
    drive()
    drive()  # absent from two listings, but not for MISSING_GRACE_SECONDS yet
    assert refreshed(job).status == Status.FETCHING_METADATA and job.reason_code == "server_torrent_unlisted"
    monkeypatch.setattr(backend, "MISSING_GRACE_SECONDS", 0)  # that long has passed
    drive()
    assert refreshed(job).status == Status.FAILED and job.reason_code == "server_torrent_missing"


UNSEEDED_FILES = {"01.flac": 1 << 20, "02.flac": 300_000}


def unseeded(tmp_path: Path, name: str, tracker) -> tuple[Path, bytes]:
    """A folder torrent (its payload under the returned folder) that nobody seeds until the test hands it to a
    seeder: a server can neither finish it nor, by magnet, get its metadata before then, however fast or slow
    the machine. (swarm.publish seeds at once: rTorrent finds the seeder by the tracker.)"""
    folder = tmp_path / "payload"
    make_payload(folder, {f"{name}/{path}": size for path, size in UNSEEDED_FILES.items()}, name)
    return folder, make_torrent(folder / name, [tracker.announce_url], 64 * 1024)


class Hiding:
    """A real client whose listings leave out the torrents in `hidden`: what rTorrent lists between dropping
    a magnet's download, once it has the metadata, and loading the torrent in its place (5 of 5 tight polls of
    rTorrent 0.9.8 saw that gap; a sync that landed in it failed the job)."""

    def __init__(self, client, hidden: set[str]) -> None:
        self.client, self.hidden = client, hidden

    def list(self, hashes=None, *, with_files: bool = False):
        return [t for t in self.client.list(hashes, with_files=with_files) if t.hash not in self.hidden]

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.e2e
@pytest.mark.django_db
def test_a_magnet_job_outlives_the_moment_rtorrent_swaps_its_download_for_the_torrent(user, plan, rtorrent, tracker,
                                                                                      seeder, tmp_path, monkeypatch):
    server = server_for(rtorrent, user)
    folder, torrent = unseeded(tmp_path, "rt-swapped", tracker)
    album = torrent_meta(torrent)
    job = jobs.add_magnet(user, album.magnet, backend=server.backend_name)
    drive()
    assert refreshed(job).status == Status.FETCHING_METADATA
    Job.objects.filter(pk=job.pk).update(started_at=job.started_at - dt.timedelta(minutes=5))  # a slow swarm
    list_through(monkeypatch, lambda client: Hiding(client, {album.info_hash}))
    drive()  # the sync lands in the gap
    assert refreshed(job).status == Status.FETCHING_METADATA
    assert job.reason_code == "server_torrent_unlisted" and "does not list this torrent" in job.reason

    monkeypatch.undo()  # the torrent is loaded
    drive()
    assert refreshed(job).status == Status.FETCHING_METADATA and job.reason_code == "server_torrent_listed"
    seeder.add(torrent, folder)
    seeder.connect(album.info_hash, ("127.0.0.1", rtorrent.peer_port))
    wait_until(lambda: (drive(), refreshed(job).status == Status.COMPLETED)[1], "job completed", 60)
    assert job.downloaded_bytes == job.size_bytes == sum(UNSEEDED_FILES.values())


@pytest.mark.e2e
@pytest.mark.django_db
def test_a_passing_server_condition_gives_way_to_downloading(user, plan, rtorrent, tracker, tmp_path, monkeypatch):
    """Checking at the start (a torrent whose data is partly there), then downloading: the reason says so."""
    server = server_for(rtorrent, user)
    _, torrent = unseeded(tmp_path, "rt-checked-first", tracker)  # never complete: a listing cannot finish it
    job = jobs.add_torrent(user, torrent, backend=server.backend_name)
    drive()
    assert refreshed(job).status == Status.DOWNLOADING
    list_through(monkeypatch, lambda client: CheckingAgain(client, first_listing=State.CHECKING))
    drive()
    assert refreshed(job).reason_code == "server_checking"
    list_through(monkeypatch, lambda client: CheckingAgain(client, first_listing=State.DOWNLOADING))
    drive()
    assert refreshed(job).status == Status.DOWNLOADING
    assert job.reason_code == "server_downloading" and job.reason == f"Downloading on {server.name}."
