"""Seedr end to end through the real processes: daphne and a qcluster worker against the fake Seedr, which
runs in this test process (real HTTP on 127.0.0.1).

Connect by device code over the API → a batch of three magnets → the worker runs them one at a time
(the remote poller syncs them, transfer tasks bring the files home, Seedr is cleaned before the next one
starts) → the files land with the right sha256 → Seedr storage is empty → every step was seen live on a
websocket.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator

import pytest

from downloads.models import Job, JobEvent, Status
from seedr.models import SeedrAccount
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.e2e.conftest import EventSocket, Stack, _print_logs
from tests.fakes.seedr_fake import FakeSeedr, file_sha256

KEY = "flt_e2e_seedr" + "s" * 36
SEEDR_EMAIL = "carol@seedr.test"
ITEMS = [  # (info-hash, name, files relative to the torrent's folder)
    ("a1" * 20, "Night Walk", [("Night Walk.mkv", 1_500_000)]),
    ("b2" * 20, "Field Notes", [("notes/day1.txt", 40_000), ("notes/day2.txt", 50_000), ("cover.jpg", 8_000)]),
    ("c3" * 20, "Harbour", [("Harbour.flac", 700_000)]),
]


@pytest.fixture
def seedr_stack(transactional_db, tmp_path) -> Iterator[tuple[Stack, FakeSeedr]]:
    fake = FakeSeedr(progress_step=25, device_interval=1).serve()
    fake.add_account(SEEDR_EMAIL, "pw", space_max=20_000_000)
    env = procs.process_env(
        tmp_path, SEEDR_API_URL=fake.api_url, SEEDR_OAUTH_URL=fake.oauth_url,
        SEEDR_TEMP_DIR=str(tmp_path / "seedr-tmp"), SYNC_INTERVAL="0.3", PROGRESS_EVENT_INTERVAL="0.001",
        EVENT_RELAY_INTERVAL="0.05",
    )
    try:
        with procs.daphne(env, tmp_path) as base_url, procs.qcluster(env, tmp_path):
            yield Stack(base_url, None, tmp_path), fake
    finally:
        fake.stop()
        _print_logs(tmp_path)


def connect_by_device_code(stack: Stack, fake: FakeSeedr) -> dict:
    with stack.api(KEY) as api:
        started = api.post("/api/v1/seedr/device/start/")
        assert started.status_code == 201, started.text
        code = started.json()
        assert code["verification_url"] == f"{fake.base_url}/devices"
        assert api.post("/api/v1/seedr/device/poll/").json()["state"] == "pending"
        fake.approve(code["user_code"], SEEDR_EMAIL)  # the person types the code on Seedr
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            polled = api.post("/api/v1/seedr/device/poll/").json()
            if polled["state"] == "connected":
                return polled
            time.sleep(code["interval"] / 2)
    raise AssertionError("the device login never completed")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_device_code_then_a_batch_of_three_runs_one_at_a_time_and_lands_home(seedr_stack, user):
    stack, fake = seedr_stack
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=5))
    ApiKeyFactory(user=user, raw=KEY)
    for info_hash, name, files in ITEMS:
        fake.define(info_hash, name, files)
    socket = EventSocket(stack, KEY)
    socket.hello()

    connected = connect_by_device_code(stack, fake)
    assert connected["account"]["account_name"] == SEEDR_EMAIL
    assert SeedrAccount.objects.get(user=user).method == "device"

    magnets = "\n".join(f"magnet:?xt=urn:btih:{h}&dn={name.replace(' ', '+')}" for h, name, _ in ITEMS)
    with stack.api(KEY) as api:
        created = api.post("/api/v1/seedr/batch-add/", json={"magnets": magnets, "name": "Weekend"})
    assert created.status_code == 201, created.text
    job_ids = [j["id"] for j in created.json()["jobs"]]

    last = job_ids[-1]
    live = socket.until(lambda m: m.get("job") == last and m["kind"] == "status" and m["code"] == "completed",
                        timeout=120)

    jobs = {job.pk: job for job in Job.objects.filter(pk__in=job_ids)}
    assert all(job.status == Status.COMPLETED for job in jobs.values()), [(j.pk, j.status, j.reason) for j in
                                                                        jobs.values()]
    # One at a time: an item starts only after the previous one completed (Seedr cleaned up).
    for earlier, later in itertools.pairwise(job_ids):
        done = JobEvent.objects.get(job_id=earlier, kind="status", code="completed").pk
        started = JobEvent.objects.get(job_id=later, kind="status", code="starting").pk
        assert started > done
    assert fake.stats["max_active_seen"] == 1

    for (info_hash, _name, files), job_id in zip(ITEMS, job_ids, strict=True):
        job = jobs[job_id]
        for path, size in files:
            digest = hashlib.sha256((job.data_dir / path).read_bytes()).hexdigest()
            assert digest == file_sha256(info_hash, path, size), path
        assert sorted(job.files.values_list("path", flat=True)) == sorted(p for p, _ in files)
    assert fake.account(SEEDR_EMAIL).is_empty()  # nothing left on Seedr
    assert fake.snapshot(SEEDR_EMAIL)["space_used"] == 0

    # Seen live, in order: every step of every item, with Seedr's metadata on the status events.
    ids = [m["id"] for m in live]
    assert ids == sorted(set(ids))
    for job_id in job_ids:
        steps = [m["code"] for m in live if m.get("job") == job_id and m["kind"] == "status"]
        assert steps == ["starting", "fetching_metadata", "downloading", "transferring", "completed"]
        assert any(m.get("job") == job_id and m["kind"] == "progress" for m in live)
    downloading = next(m for m in live if m.get("job") == job_ids[1] and m["code"] == "downloading")
    assert downloading["data"]["provider"]["batch"] == {"id": created.json()["batch"]["id"], "index": 2,
                                                        "total": 3, "remaining": 2}
    socket.close()
