"""Tracker compliance against a real transmission-daemon and the MyAnonamouse fake: the client's own stop
limits are off for a tracker torrent (read back from the daemon), seeding time accrues into the ledger across
a restart of Flotilla and of transmission-daemon (and a torrent added again), and a grab waits at the
account's unsatisfied limit, then starts by itself once a torrent is satisfied."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
import transmission_rpc

from accounts.models import AuditLog
from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerRules
from downloads import dispatch
from downloads import services as jobs
from downloads.models import Job, Status
from downloads.swarm.payload import make_torrent
from indexers.models import JobSource
from servers import clients
from tests import procs
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.fakes.mam_fake import FakeMam
from tests.indexers.factories import IndexerFactory
from tests.servers import daemons
from tests.servers.daemons import wait_until
from tests.servers.factories import TorrentServerFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _setup(settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    settings.INDEXERS_ALLOW_INTERNAL = True  # the fake listens on 127.0.0.1
    yield
    for server_id in list(clients._cache):
        clients.forget(server_id)


@pytest.fixture
def mam(mam):
    mam.unsat_count = 0
    return mam


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10)).plan


@pytest.fixture
def transmission(tmp_path):
    with daemons.running("transmission", tmp_path / "tr") as daemon:
        yield daemon


@pytest.fixture
def rules(db):
    # Seconds instead of 72 hours, so a test sees a torrent become satisfied.
    return TrackerRules.objects.filter(tracker="myanonamouse").update(
        min_seed_time=dt.timedelta(seconds=3), satisfied_margin=dt.timedelta(0))


def book_on(daemon: daemons.Daemon, name: str) -> bytes:
    """A private torrent whose data is already in the daemon's folder: it verifies and seeds at once."""
    folder = daemon.download_dir / name
    folder.mkdir()
    (folder / "01.mp3").write_bytes(os.urandom(96 * 1024))
    return make_torrent(folder, trackers=["http://127.0.0.1:9/announce"], private=True)


def grab(user, indexer, server, torrent: bytes, name: str, mam: FakeMam) -> Job:
    """The job a grab of the fake's torrent makes (its guid is MAM's info URL: the tracker's torrent id)."""
    tid = mam.add(name, torrent=torrent)
    job = jobs.add_torrent(user, torrent, backend=server.backend_name)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name=indexer.name, title=name,
                             guid=f"https://www.myanonamouse.net/t/{tid}")
    return job


def tracker_id(job: Job) -> int:
    return compliance.tracker_torrent_id(JobSource.objects.get(job=job))


def rpc(daemon: daemons.Daemon) -> transmission_rpc.Client:
    return transmission_rpc.Client(host="127.0.0.1", port=daemon.rpc_port, username=daemon.username,
                                   password=daemon.password, timeout=10)


def tick() -> None:
    """The worker's part: the compliance sweep (ledgers, accounts), then dispatch and sync."""
    compliance.sweep()
    dispatch.dispatch_queued()
    dispatch.sync_running()


def ledger(job: Job) -> SeedingLedger:
    return SeedingLedger.objects.get(job=job)


def restart_transmission(daemon: daemons.Daemon) -> None:
    """SIGTERM (it saves its resume files), then the same config folder again on the same ports."""
    daemon.stop()
    conf = daemon.root / "config"
    with daemon.log.open("ab") as log:
        daemon.proc = subprocess.Popen([daemons.require_binary("transmission-daemon"), "-f", "-g", str(conf)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

    def ready() -> bool:
        client = rpc(daemon)
        try:
            return Path(client.get_session().config_dir).resolve() == conf.resolve()
        finally:
            client._http_session.close()

    procs.wait_ready(ready, "transmission-daemon (restarted)", daemon.proc, daemon.log)


def test_stop_limits_off_and_seeding_time_survives_restarts(user, plan, mam, transmission, rules):
    indexer = IndexerFactory(owner=user, kind="myanonamouse", url=mam.base_url,
                             credentials=json.dumps({"mam_id": mam.new_session()}))
    server = TorrentServerFactory(owner=user, **transmission.server_fields())
    job = grab(user, indexer, server, book_on(transmission, "Seeded Book"), "Seeded Book", mam)

    wait_until(lambda: (tick(), Job.objects.get(pk=job.pk).status != Status.QUEUED)[1], "the grab started")
    server.refresh_from_db()
    assert server.client_version.startswith("Transmission ")  # read from the server to approve the client
    client = rpc(transmission)
    fields = client.get_torrent(job.info_hash, arguments=["seedRatioMode", "seedIdleMode"]).fields
    assert (fields["seedRatioMode"], fields["seedIdleMode"]) == (2, 2)  # unlimited: it never stops itself

    wait_until(lambda: (tick(), SeedingLedger.objects.filter(job=job, seeded_seconds__gte=2).exists())[1],
               "seeding time accrued", 60)
    assert ledger(job).completed_at is not None

    # Flotilla restarts: nothing in memory, the ledger is in the database and goes on from there.
    clients.forget(server.pk)
    before = ledger(job).seeded_seconds
    compliance.sync_ledgers()
    assert ledger(job).seeded_seconds >= before

    # transmission-daemon restarts: its counter comes back from its resume file; time only grows.
    before = ledger(job).seeded_seconds
    restart_transmission(transmission)
    clients.forget(server.pk)
    wait_until(lambda: (compliance.sync_ledgers(), ledger(job).seeded_seconds >= before + 2)[1],
               "seeding time accrued after the daemon's restart", 60)
    assert ledger(job).satisfied_at is not None  # 3 s reached (the test's rules)

    # The torrent added again: its counter starts at 0, the ledger keeps what it had and adds to it.
    before = ledger(job).seeded_seconds
    torrent_file = (transmission.root / "config" / "torrents")
    data = next(torrent_file.glob("*.torrent")).read_bytes()
    client.remove_torrent(job.info_hash, delete_data=False)
    client.add_torrent(data, download_dir=str(transmission.download_dir))
    wait_until(lambda: (compliance.sync_ledgers(), ledger(job).seeded_seconds >= before + 2)[1],
               "seeding time accrued after the torrent was added again", 60)
    assert ledger(job).reported_seconds < ledger(job).seeded_seconds  # a new incarnation, not a loss
    client._http_session.close()


def test_grab_waits_at_the_unsatisfied_limit_and_starts_when_a_torrent_is_satisfied(user, plan, mam, transmission,
                                                                                     rules):
    mam.unsat_count, mam.unsat_limit = 0, 1
    indexer = IndexerFactory(owner=user, kind="myanonamouse", url=mam.base_url,
                             credentials=json.dumps({"mam_id": mam.new_session()}))
    server = TorrentServerFactory(owner=user, **transmission.server_fields())
    first = grab(user, indexer, server, book_on(transmission, "First Book"), "First Book", mam)
    wait_until(lambda: (tick(), Job.objects.get(pk=first.pk).status != Status.QUEUED)[1], "the first grab started")
    mam.unsat_count, mam.snatches["unsat"] = 1, [tracker_id(first)]  # the tracker saw it announced

    second = grab(user, indexer, server, book_on(transmission, "Second Book"), "Second Book", mam)
    tick()
    second.refresh_from_db()
    assert (second.status, second.reason_code) == (Status.QUEUED, compliance.UNSAT_LIMIT)
    assert "1 of your 1 unsatisfied" in second.reason

    # The first torrent seeds long enough by Flotilla's clock, but the tracker still lists it as unsatisfied:
    # not satisfied, the second waits. Once the tracker agrees (off its list, its count drops) the second
    # starts on its own, nobody touches it.
    wait_until(lambda: (tick(), ledger(first).satisfied_at is not None)[1], "Flotilla's clock satisfied", 60)
    tick()
    assert not ledger(first).satisfied and ledger(first).tracker_satisfied_at is None
    assert Job.objects.get(pk=second.pk).status == Status.QUEUED
    mam.unsat_count, mam.snatches["unsat"] = 0, []
    wait_until(lambda: (tick(), Job.objects.get(pk=second.pk).status != Status.QUEUED)[1], "the second grab started")
    assert ledger(first).satisfied
    assert len(mam.paths("/json/loadUserDetailsTorrents.php")) >= 2  # asked while it waited, and once more


def test_with_keep_seeding_off_the_torrent_leaves_the_server_once_both_clocks_agree(user, plan, mam, transmission,
                                                                                      rules):
    TrackerRules.objects.filter(tracker="myanonamouse").update(keep_seeding=False)
    indexer = IndexerFactory(owner=user, kind="myanonamouse", url=mam.base_url,
                             credentials=json.dumps({"mam_id": mam.new_session()}))
    server = TorrentServerFactory(owner=user, **transmission.server_fields())
    job = grab(user, indexer, server, book_on(transmission, "Released Book"), "Released Book", mam)
    mam.snatches["unsat"] = [tracker_id(job)]  # the tracker saw it announced: unsatisfied for now

    wait_until(lambda: (tick(), SeedingLedger.objects.filter(job=job, satisfied_at__isnull=False).exists())[1],
               "Flotilla's clock satisfied", 60)
    tick()
    assert ledger(job).released_at is None, "Flotilla's clock alone does not release it"
    with clients.connect(server) as remote:
        assert remote.get(job.info_hash, with_files=False).hash == job.info_hash.lower()

    mam.snatches["unsat"] = []  # the tracker agrees
    wait_until(lambda: (tick(), ledger(job).released_at is not None)[1], "released once both clocks agree", 60)
    client = rpc(transmission)
    assert job.info_hash.lower() not in {t.hash_string for t in client.get_torrents()}
    client._http_session.close()
    assert (transmission.download_dir / "Released Book" / "01.mp3").exists(), "the data stays"
    assert AuditLog.objects.filter(action="tracker.release", target_id=str(job.pk)).count() == 1
    tick()
    assert AuditLog.objects.filter(action="tracker.release", target_id=str(job.pk)).count() == 1, "released once"
