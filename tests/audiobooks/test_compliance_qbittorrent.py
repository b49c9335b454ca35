"""A tracker job dispatched to a real qbittorrent-nox: its version is read and approved, and the torrent's own
share limits are off (ratio and seeding time -1, read back from qBittorrent), while an ordinary job keeps
qBittorrent's defaults."""

from __future__ import annotations

import json

import pytest
import qbittorrentapi

from downloads import dispatch
from downloads import services as jobs
from downloads.models import Job, Status
from downloads.swarm.payload import make_torrent
from indexers.models import JobSource
from servers import clients
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.indexers.factories import IndexerFactory
from tests.servers import daemons
from tests.servers.daemons import wait_until
from tests.servers.factories import TorrentServerFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]
qbittorrent = daemons.module_fixture("qbittorrent")
ACCOUNT = {"unsatisfied": 0, "unsatisfied_limit": 50, "uploaded_bytes": 2**40, "downloaded_bytes": 2**30}


@pytest.fixture(autouse=True)
def _fresh_clients():
    yield
    for server_id in list(clients._cache):
        clients.forget(server_id)


def test_tracker_torrent_has_its_share_limits_off_on_qbittorrent(user, qbittorrent, tmp_path):
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10))
    server = TorrentServerFactory(owner=user, **qbittorrent.server_fields())
    indexer = IndexerFactory(owner=user, kind="myanonamouse", credentials=json.dumps({"mam_id": "x"}),
                             account_status=ACCOUNT)
    made = {}
    for name, private in (("Tracker Book", True), ("Public Thing", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.bin").write_bytes(name.encode() * 1000)
        made[name] = jobs.add_torrent(user, make_torrent(tmp_path / name, ["http://127.0.0.1:9/announce"],
                                                         private=private), backend=server.backend_name)
    tracker, public = made["Tracker Book"], made["Public Thing"]
    JobSource.objects.create(job=tracker, indexer=indexer, indexer_name=indexer.name, guid="g", title="t")

    wait_until(lambda: (dispatch.dispatch_queued(),
                        not Job.objects.filter(pk__in=[tracker.pk, public.pk], status=Status.QUEUED).exists())[1],
               "both jobs submitted")
    server.refresh_from_db()
    assert server.client_version.startswith("qBittorrent")
    qb = qbittorrentapi.Client(host="127.0.0.1", port=qbittorrent.rpc_port, username=qbittorrent.username,
                               password=qbittorrent.password)
    try:
        limits = {t.hash: (t.ratio_limit, t.seeding_time_limit) for t in qb.torrents_info()}
    finally:
        qb.auth_log_out()
    assert limits[tracker.info_hash.lower()] == (-1, -1)  # no limit for this torrent
    assert limits[public.info_hash.lower()] == (-2, -2)  # qBittorrent's global limits, untouched
