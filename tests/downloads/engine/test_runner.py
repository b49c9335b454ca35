"""The engine against a real swarm on 127.0.0.1, in-process and tick by tick (no subprocess)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from billing.models import Plan
from billing.services import assign_plan
from downloads import bring_home, services
from downloads.engine.resume import ResumeStore
from downloads.models import EventKind, Job, JobEvent, Status
from downloads.swarm import bencode
from tests.downloads.engine.conftest import run_until
from tests.downloads.factories import JobFactory

pytestmark = pytest.mark.django_db


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job


def status_codes(job: Job) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job.pk, kind=EventKind.STATUS).values_list("code", flat=True))


def test_magnet_downloads_to_completion_with_its_files_registered(engine, local_swarm, user, no_seeding):
    album = local_swarm.publish("album", {"01.bin": 300_000, "sub/02.bin": 120_000})
    job = services.add_magnet(user, album.magnet)

    run_until(engine, lambda: refreshed(job).status == Status.COMPLETED, what="completed")

    for relative, digest in album.files.items():
        assert sha256(job.data_dir / relative) == digest
    files = {f.path: f for f in job.files.all()}
    assert set(files) == set(album.files)
    assert all(f.completed_bytes == f.size_bytes == album.sizes[f.path] for f in files.values())
    assert job.size_bytes == album.size and job.progress == 1.0 and job.downloaded_bytes == album.size
    assert status_codes(job) == ["starting", "fetching_metadata", "downloading", "seeding", "completed"]
    assert JobEvent.objects.filter(job_id=job.pk, kind=EventKind.FILES).count() == 1
    assert JobEvent.objects.filter(job_id=job.pk, kind=EventKind.PROGRESS).exists()
    assert job.claimed_by == "engine-test"
    assert not engine.torrents, "a completed torrent leaves the session"
    assert not engine.resume.path(job.pk).exists()


class SlowToLookSession:
    """The engine's session as a starved engine thread sees it: `add_torrent` returns only once the swarm has
    already handed over a magnet's metadata."""

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    def add_torrent(self, params):
        handle = self._session.add_torrent(params)
        deadline = time.monotonic() + 30
        while not handle.status().has_metadata:
            assert time.monotonic() < deadline, "the swarm never sent the metadata"
            self._session.wait_for_alert(50)
        return handle


def test_a_magnet_whose_metadata_comes_at_once_still_shows_fetching_metadata(engine, local_swarm, user,
                                                                              no_seeding):
    album = local_swarm.publish("instant.bin", 200_000)
    engine.session = SlowToLookSession(engine.session)
    job = services.add_magnet(user, album.magnet)

    run_until(engine, lambda: refreshed(job).status == Status.COMPLETED, what="completed")

    assert status_codes(job) == ["starting", "fetching_metadata", "downloading", "seeding", "completed"]


def test_torrent_file_downloads_without_fetching_metadata(engine, local_swarm, user, no_seeding):
    album = local_swarm.publish("single.bin", 700_000)
    job = services.add_torrent(user, album.torrent_bytes)

    run_until(engine, lambda: refreshed(job).status == Status.COMPLETED, what="completed")

    assert sha256(job.data_dir / "single.bin") == album.files["single.bin"]
    assert "fetching_metadata" not in status_codes(job)
    assert [f.path for f in job.files.all()] == ["single.bin"]


def test_seeding_follows_the_plan_ratio_limit(engine, local_swarm, user):
    plan = Plan.objects.create(name="Seeder", seed_ratio_limit=0.0, seed_time_limit_minutes=1)
    assign_plan(user, plan)
    album = local_swarm.publish("seeded.bin", 200_000)
    job = services.add_torrent(user, album.torrent_bytes)

    run_until(engine, lambda: refreshed(job).status == Status.SEEDING, what="seeding")
    # Nobody downloads from us on this swarm: the job keeps seeding until the time limit.
    for _ in range(10):
        engine.tick(0.05)
    assert refreshed(job).status == Status.SEEDING
    plan.seed_time_limit_minutes = 0
    plan.seed_ratio_limit = 0.0
    plan.save()
    engine.torrents[job.pk].plan = None  # the engine reads the plan again
    run_until(engine, lambda: refreshed(job).status == Status.COMPLETED, what="completed")
    assert (job.data_dir / "seeded.bin").exists(), "files stay after seeding ends"


def test_a_seeding_job_completed_elsewhere_leaves_the_session_with_its_files(engine, local_swarm, user):
    """What a tracker's release by policy does (audiobooks.compliance, from the worker): the finish line for a job
    the engine seeds; the engine's next reconcile takes the torrent out, files and nothing else kept."""
    assign_plan(user, Plan.objects.create(name="Seeder", seed_ratio_limit=0.0, seed_time_limit_minutes=600))
    album = local_swarm.publish("released.bin", 200_000)
    job = services.add_torrent(user, album.torrent_bytes)
    run_until(engine, lambda: refreshed(job).status == Status.SEEDING, what="seeding")
    engine.tick()
    assert engine.resume.path(job.pk).exists()

    bring_home.complete_in_place(refreshed(job), reason_code="tracker_released", reason="Complete.")
    run_until(engine, lambda: job.pk not in engine.torrents, what="the torrent out of the session")
    assert refreshed(job).status == Status.COMPLETED and job.reason_code == "tracker_released"
    assert sha256(job.data_dir / "released.bin") == album.files["released.bin"], "files stay"
    assert not engine.resume.path(job.pk).exists()


def test_pause_and_resume_reach_the_session(engine, local_swarm, user, no_seeding):
    album = local_swarm.publish("slow.bin", 4 << 20, upload_limit=256 * 1024)
    job = services.add_torrent(user, album.torrent_bytes)
    run_until(engine, lambda: refreshed(job).status == Status.DOWNLOADING, what="downloading")

    services.pause_job(user, job)
    run_until(engine, lambda: engine.torrents[job.pk].handle.status().paused, what="paused in libtorrent")
    paused_at = engine.torrents[job.pk].handle.status().total_wanted_done
    for _ in range(10):
        engine.tick(0.05)
    assert engine.torrents[job.pk].handle.status().total_wanted_done == paused_at
    assert refreshed(job).status == Status.PAUSED and job.download_rate == 0

    local_swarm.seeder.set_upload_limit(album.info_hash, None)
    services.resume_job(user, refreshed(job))
    run_until(engine, lambda: refreshed(job).status == Status.COMPLETED, what="completed after resume")
    assert sha256(job.data_dir / "slow.bin") == album.files["slow.bin"]


@pytest.mark.parametrize("delete_data", [False, True])
def test_cancel_removes_the_torrent_and_optionally_its_files(engine, local_swarm, user, delete_data):
    album = local_swarm.publish("cancel.bin", 4 << 20, upload_limit=256 * 1024)
    job = services.add_torrent(user, album.torrent_bytes)
    run_until(engine, lambda: refreshed(job).downloaded_bytes > 0, what="some bytes")

    services.cancel_job(user, refreshed(job), delete_data=delete_data)
    run_until(engine, lambda: job.pk not in engine.torrents, what="torrent removed")
    run_until(engine, lambda: (job.data_dir / "cancel.bin").exists() != delete_data, timeout=60,
              what="files kept or deleted")
    assert refreshed(job).status == Status.CANCELLED
    assert not engine.resume.path(job.pk).exists()


def test_quota_refusal_on_metadata_fails_the_job_and_removes_partial_data(engine, local_swarm, user):
    plan = Plan.objects.create(name="Tiny", max_job_size_bytes=100_000)
    assign_plan(user, plan)
    album = local_swarm.publish("big.bin", 300_000)
    job = services.add_magnet(user, album.magnet)  # a magnet: the size is unknown until metadata arrives

    run_until(engine, lambda: refreshed(job).status == Status.FAILED, what="failed")

    assert job.reason_code == "quota_exceeded" and job.size_bytes == album.size
    assert job.data_deleted_at is not None
    run_until(engine, lambda: not job.data_dir.exists() or not any(job.data_dir.iterdir()), timeout=60,
              what="partial data gone")
    assert not engine.torrents and not job.files.exists()


def test_metadata_with_a_path_leaving_the_job_folder_is_refused(engine, local_swarm, user):
    data = b"x" * 20_000
    info = {
        "name": "innocent",
        "piece length": 32 * 1024,
        "pieces": hashlib.sha1(data).digest(),
        "files": [{"length": len(data), "path": ["..", "..", "escape.bin"]}],
    }
    info_hash = hashlib.sha1(bencode(info)).hexdigest()
    torrent = bencode({"announce": local_swarm.tracker.announce_url, "info": info})
    # The seeder's libtorrent renames the ".." parts to "_" and seeds from there; what a downloader receives
    # as metadata is the raw info dictionary, ".." included.
    seeded = local_swarm.directory / "evil" / "innocent" / "_" / "_" / "escape.bin"
    seeded.parent.mkdir(parents=True)
    seeded.write_bytes(data)
    local_swarm.seeder.add(torrent, local_swarm.directory / "evil")
    magnet = f"magnet:?xt=urn:btih:{info_hash}&tr={local_swarm.tracker.announce_url}"
    job = services.add_magnet(user, magnet)

    run_until(engine, lambda: refreshed(job).status == Status.FAILED, what="failed")

    assert job.reason_code == "torrent_unsafe_path"
    assert not job.files.exists()
    assert not (job.data_dir.parent.parent / "escape.bin").exists()


def test_restart_continues_from_resume_data_without_downloading_again(make_engine, local_swarm, user, no_seeding,
                                                                       tmp_path):
    album = local_swarm.publish("resume.bin", 8 << 20, upload_limit=1 << 20)
    job = services.add_torrent(user, album.torrent_bytes)
    first = make_engine("engine-a", state_dir=tmp_path / "state")
    run_until(first, lambda: refreshed(job).downloaded_bytes > 2 << 20, what="a quarter downloaded")
    first.shutdown()  # a clean stop: resume data written for every torrent
    assert first.resume.path(job.pk).exists()
    before = local_swarm.seeder.uploaded_bytes(album.info_hash)

    local_swarm.seeder.set_upload_limit(album.info_hash, None)
    second = make_engine("engine-a", state_dir=tmp_path / "state")
    run_until(second, lambda: refreshed(job).status == Status.COMPLETED, what="completed after restart")

    assert sha256(job.data_dir / "resume.bin") == album.files["resume.bin"]
    uploaded_after_restart = local_swarm.seeder.uploaded_bytes(album.info_hash) - before
    assert uploaded_after_restart < album.size - (1 << 20), "verified pieces were downloaded again"
    assert job.files.count() == 1


def test_engine_name_cannot_run_twice(make_engine, tmp_path):
    from downloads.engine.runner import EngineAlreadyRunning

    make_engine("twin", state_dir=tmp_path / "state")
    with pytest.raises(EngineAlreadyRunning):
        make_engine("twin", state_dir=tmp_path / "state")


def test_resume_data_of_jobs_that_ended_while_no_engine_held_them_is_pruned(make_engine, user, tmp_path):
    store = ResumeStore(tmp_path / "state" / "resume")
    paused = JobFactory(user=user, status=Status.PAUSED)  # not claimed at start: its resume data must stay
    completed = JobFactory(user=user, status=Status.COMPLETED)
    deleted = JobFactory(user=user, status=Status.PAUSED)
    for job in (paused, completed, deleted):
        store.write(job.pk, b"resume")
    deleted_pk = deleted.pk
    deleted.delete()  # deleted while every engine was down
    stale = store.directory / f".{paused.pk}.resume.1234.tmp"
    fresh = store.directory / f".{completed.pk}.resume.5678.tmp"  # a write in flight elsewhere
    stale.write_bytes(b"torn")
    fresh.write_bytes(b"in flight")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    engine = make_engine("pruner", state_dir=tmp_path / "state")
    engine.tick()

    assert store.job_ids() == [paused.pk]
    assert not stale.exists() and fresh.exists()
    assert engine.prune_resume_files() == [], "nothing left to prune"
    assert deleted_pk not in store.job_ids()
