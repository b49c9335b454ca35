"""A server job through the real worker: a `manage.py qcluster` dispatches it to rtorrent, the remote poller
chain syncs it (no sync enqueued by the test), the delivery task brings the files home through the path
mapping. Nothing here runs the backend in the test process."""

from __future__ import annotations

import pytest

from downloads import services as jobs
from downloads.models import Job, Status
from downloads.swarm import sha256_file
from tests.e2e.conftest import wait_for, worker_process
from tests.servers.conftest import seed_to, server_for


@pytest.fixture
def worker(transactional_db, tmp_path):
    with worker_process(tmp_path, SYNC_INTERVAL="0.2", PROGRESS_EVENT_INTERVAL="0.1"):
        yield


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_submits_polls_and_delivers_a_server_job(worker, user, plan, rtorrent, swarm):
    server = server_for(rtorrent, user, remote_path=str(rtorrent.download_dir), local_path=str(rtorrent.download_dir))
    record = swarm.publish("worker-album", {"a.bin": 1 << 20, "b/c.bin": 200_000})
    job = jobs.add_torrent(user, record.torrent_bytes, backend=server.backend_name)  # kicks the dispatcher

    wait_for(lambda: Job.objects.get(pk=job.pk).remote_id, "the worker to submit the job", timeout=30)
    seed_to(swarm, record, rtorrent)
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, "the job to be delivered", timeout=60)

    job.refresh_from_db()
    assert job.reason_code == "delivered"
    for path, digest in record.files.items():
        assert sha256_file(job.data_dir / path) == digest
