"""Real torrent daemons for the servers tests (module-scoped: starting transmission or qBittorrent per test
would dominate the run), Flotilla records pointing at them, and `drive()`, the worker's part in-process."""

from __future__ import annotations

import pytest

from downloads import dispatch
from downloads.models import Job
from servers import clients
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.runs import run_due
from tests.servers import daemons
from tests.servers.factories import TorrentServerFactory

transmission = daemons.module_fixture("transmission")
rtorrent = daemons.module_fixture("rtorrent")
qbittorrent = daemons.module_fixture("qbittorrent")


@pytest.fixture(autouse=True)
def _fresh_clients():
    """Cached clients are per server id; ids are reused across tests' databases."""
    yield
    for server_id in list(clients._cache):
        clients.forget(server_id)


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10)).plan


def server_for(daemon: daemons.Daemon, owner, **extra):
    return TorrentServerFactory(owner=owner, **daemon.server_fields(**extra))


def drive(rounds: int = 1) -> None:
    """What the worker does, in-process: dispatch, one sync per group, and the bring-home runs enqueued."""
    for _ in range(rounds):
        dispatch.dispatch_queued()
        dispatch.sync_running()
        run_due(backend__startswith="server:")


def seed_to(swarm, record, daemon: daemons.Daemon) -> None:
    """Transmission never dials 127.x peers (research §4.2): the seeder dials it. Others find the seeder by
    the tracker; a direct dial does not hurt them either."""
    swarm.seeder.connect(record.info_hash, ("127.0.0.1", daemon.peer_port))


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job
