"""The built-in engine as a real process (`manage.py runengine`) against a real swarm on 127.0.0.1.

Jobs go in through daphne's HTTP API, the engine process downloads them, files come back through signed
links; user actions reach the running engine; a `kill -9` loses nothing; two engines never share a job.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections import Counter

import httpx
import pytest

from billing.services import current_plan
from downloads.models import EventKind, Job, JobEvent, ProcessHeartbeat, Status
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobFactory
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_e2e_engine" + "e" * 35


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 0, 0  # complete as soon as downloaded
    plan.save()
    return user


def api(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Token {KEY}"}, timeout=30)


def job_status(job_id: int) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_until_quiet(torrent, what: str, window: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until the swarm sends (next to) nothing of a `Withheld` torrent during a whole `window`: the
    downloader has stopped asking. A deadline for a loaded machine, not a speed check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = torrent.uploaded()
        time.sleep(window)
        if torrent.uploaded() - before < 64 * 1024:
            return
    raise AssertionError(f"{what}: the swarm was still sending after {timeout}s")


def verified_bytes_in(resume_file) -> int:
    """Bytes of the pieces a libtorrent resume file marks as verified (what a restart will not fetch again)."""
    import libtorrent as lt

    from downloads.engine.resume import ResumeStore

    try:  # the file is encrypted: read it as the engine does
        params = lt.read_resume_data(ResumeStore(resume_file.parent).read(int(resume_file.stem)) or b"")
    except (OSError, RuntimeError):  # not written yet
        return 0
    if params.ti is None:
        return 0
    return sum(params.have_pieces) * params.ti.piece_length()


def test_magnet_and_multifile_torrent_download_and_come_back_through_signed_links(alice, env, tmp_path, swarm):
    single = swarm.publish("movie.bin", 3 << 20)
    album = swarm.publish("album", {"01.bin": 1 << 20, "02.bin": 700_000, "art/cover.bin": 90_000})
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), api(base_url) as client:
        created = client.post("/api/v1/jobs/", json={"magnet": single.magnet})
        assert created.status_code == 201, created.text
        uploaded = client.post("/api/v1/jobs/", files={"torrent": ("album.torrent", album.torrent_bytes)})
        assert uploaded.status_code == 201, uploaded.text
        magnet_id, torrent_id = created.json()["id"], uploaded.json()["id"]

        wait_for(lambda: job_status(magnet_id) == job_status(torrent_id) == Status.COMPLETED, "both complete", 90)

        for job_id, published in ((magnet_id, single), (torrent_id, album)):
            listing = client.get(f"/api/v1/jobs/{job_id}/files/").json()
            by_path = {f["path"]: f for f in listing["files"]}
            assert set(by_path) == set(published.files)
            for path, entry in by_path.items():
                assert entry["is_complete"] and entry["size_bytes"] == published.sizes[path]
                body = httpx.get(entry["download_url"], timeout=30)
                assert body.status_code == 200 and sha256(body.content) == published.files[path]
                ranged = httpx.get(entry["download_url"], headers={"Range": "bytes=1000-65535"}, timeout=30)
                assert ranged.status_code == 206 and ranged.content == body.content[1000:65536]
                tail = httpx.get(entry["download_url"], headers={"Range": "bytes=-100"}, timeout=30)
                assert tail.status_code == 206 and tail.content == body.content[-100:]

    magnet_codes = list(JobEvent.objects.filter(job_id=magnet_id, kind=EventKind.STATUS).values_list("code", flat=True))
    assert magnet_codes == ["starting", "fetching_metadata", "downloading", "seeding", "completed"]
    torrent_codes = list(JobEvent.objects.filter(job_id=torrent_id, kind=EventKind.STATUS).values_list("code",
                                                                                                       flat=True))
    assert torrent_codes == ["starting", "downloading", "seeding", "completed"]
    assert JobEvent.objects.filter(job_id=magnet_id, kind=EventKind.FILES).count() == 1


def engine_holds(**counts: int) -> bool:
    """The running engine's last heartbeat says it holds these torrents (`torrents`, `paused`, ...)."""
    beat = ProcessHeartbeat.objects.filter(kind="engine").first()
    return beat is not None and all(beat.info.get(key) == value for key, value in counts.items())


def test_pause_resume_and_cancel_reach_the_running_engine(alice, env, tmp_path, withhold):
    # The swarm holds half of each until the test releases the rest: every action lands mid-download, and a
    # release after it shows whether the engine still asks (the rest then comes at loopback speed).
    slow, kept, dropped = (withhold(name, 6 << 20) for name in ("slow.bin", "kept.bin", "dropped.bin"))
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), api(base_url) as client:
        ids = {}
        for published in (slow, kept, dropped):
            response = client.post("/api/v1/jobs/", files={"torrent": ("t.torrent", published.torrent_bytes)})
            ids[published.name] = response.json()["id"]
        wait_for(lambda: all(Job.objects.get(pk=i).downloaded_bytes > 0 for i in ids.values()), "bytes flowing", 60)

        assert client.post(f"/api/v1/jobs/{ids['slow.bin']}/pause/").status_code == 200
        wait_for(lambda: engine_holds(torrents=3, paused=1), "the engine paused the torrent", 30)
        slow.release()
        wait_until_quiet(slow, "paused job")
        assert job_status(ids["slow.bin"]) == Status.PAUSED
        assert slow.uploaded() < slow.size, "paused: not fetched though the whole file is in the swarm now"

        assert client.post(f"/api/v1/jobs/{ids['kept.bin']}/cancel/", json={"delete_data": False}).status_code == 200
        assert client.post(f"/api/v1/jobs/{ids['dropped.bin']}/cancel/", json={"delete_data": True}).status_code == 200
        dropped_dir = Job.objects.get(pk=ids["dropped.bin"]).data_dir
        wait_for(lambda: not dropped_dir.exists() or not any(dropped_dir.rglob("*.bin")), "deleted data gone", 60)
        wait_for(lambda: engine_holds(torrents=1), "the engine dropped both cancelled torrents", 30)
        kept.release()
        wait_until_quiet(kept, "cancelled job")
        assert kept.uploaded() < kept.size, "cancelled: not fetched though the whole file is in the swarm now"
        assert (Job.objects.get(pk=ids["kept.bin"]).data_dir / "kept.bin").exists(), "kept data must stay"
        assert not (dropped_dir / "dropped.bin").exists()

        assert client.post(f"/api/v1/jobs/{ids['slow.bin']}/resume/").status_code == 200
        wait_for(lambda: job_status(ids["slow.bin"]) == Status.COMPLETED, "resumed job completes", 60)
        job = Job.objects.get(pk=ids["slow.bin"])
        assert sha256((job.data_dir / "slow.bin").read_bytes()) == slow.sha256


def test_kill_9_mid_download_then_restart_completes_without_downloading_again(alice, env, tmp_path, withhold):
    big = withhold("big.bin", 16 << 20, keep=0.6)  # the swarm has 60 % of it until the restart
    with procs.daphne(env, tmp_path) as base_url, api(base_url) as client:
        job_id = client.post("/api/v1/jobs/", json={"magnet": big.magnet}).json()["id"]
        resume_file = tmp_path / "engine" / "resume" / f"{job_id}.resume"
        with procs.engine(env, tmp_path, name="crashy") as first:
            # Saved regularly (ENGINE_RESUME_SAVE_INTERVAL=1) while it downloads: wait for a save showing a third.
            wait_for(lambda: verified_bytes_in(resume_file) > 5 << 20, "resume data with a third verified", 60)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        before_restart = big.uploaded()
        saved = verified_bytes_in(resume_file)  # exactly what the restarted engine starts from
        big.release()
        with procs.engine(env, tmp_path, name="crashy"):
            wait_for(lambda: job_status(job_id) == Status.COMPLETED, "completed after restart", 90)

    job = Job.objects.get(pk=job_id)
    assert sha256((job.data_dir / "big.bin").read_bytes()) == big.sha256
    sent_again = big.uploaded() - before_restart
    # What the resume data did not hold (pieces verified after its last save, or in flight at the kill) is
    # fetched again; what it held never is. A little slack for blocks requested twice near the end.
    unsaved = big.size - saved
    assert sent_again <= unsaved + (256 << 10), f"re-downloaded {sent_again - unsaved} bytes the resume data held"
    assert job.files.count() == 1 and Job.objects.count() == 1
    assert JobEvent.objects.filter(job_id=job_id, kind=EventKind.FILES).count() == 1


def test_two_engines_claim_each_of_20_jobs_exactly_once(user, env, tmp_path):
    plan = current_plan(user)
    plan.max_active_jobs = 0  # unlimited: only the engines' own room limits the claims
    plan.save()
    # Metadata for these never arrives (no peers anywhere): each job stays with the engine that claimed it.
    jobs = [JobFactory(user=user, name=f"claim-{n}") for n in range(20)]
    env = dict(env, ENGINE_MAX_TORRENTS="12")  # 12 + 12 ≥ 20: neither engine can take everything
    with procs.engine(env, tmp_path, name="engine-a"), procs.engine(env, tmp_path, name="engine-b"):
        wait_for(lambda: not Job.objects.filter(status=Status.QUEUED).exists(), "all 20 claimed", 30)
        time.sleep(1)  # a few more reconcile rounds: nothing may be claimed twice meanwhile
        owners = dict(Job.objects.values_list("pk", "claimed_by"))
        claims = Counter(
            JobEvent.objects.filter(kind=EventKind.STATUS, code=Status.STARTING, data__reason_code="claimed")
            .values_list("job_id", flat=True)
        )
        held = {hb.name: hb.info["torrents"] for hb in ProcessHeartbeat.objects.filter(kind="engine")}

    assert set(owners) == {job.pk for job in jobs}
    assert set(owners.values()) == {"engine-a", "engine-b"}
    assert claims == Counter({job.pk: 1 for job in jobs}), "a job was claimed more than once"
    assert sum(held.values()) == 20 and max(held.values()) <= 12


def test_jobs_of_a_dead_engine_are_taken_over(user, env, tmp_path):
    jobs = [JobFactory(user=user, name=f"orphan-{n}") for n in range(3)]
    with procs.engine(env, tmp_path, name="doomed") as doomed:
        # Wait for the torrents to be in the session (fetching metadata), not just claimed, so the
        # kill lands on a known state whatever the load.
        in_session = Job.objects.filter(claimed_by="doomed", status=Status.FETCHING_METADATA)
        wait_for(lambda: in_session.count() == 3, "in the first engine's session", 30)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
    with procs.engine(env, tmp_path, name="heir"):
        # ENGINE_HEARTBEAT_TIMEOUT=4: after that the heir requeues the orphans and claims them.
        wait_for(lambda: Job.objects.filter(claimed_by="heir").count() == 3, "taken over by the heir", 30)
    for job in jobs:
        codes = list(JobEvent.objects.filter(job_id=job.pk, kind=EventKind.STATUS).values_list("code", flat=True))
        assert codes[:3] == ["starting", "fetching_metadata", "queued"], codes
        assert JobEvent.objects.filter(job_id=job.pk, code="queued", data__reason_code="engine_lost").exists()


def test_sigterm_writes_resume_data_and_exits_cleanly(alice, env, tmp_path, withhold):
    slow = withhold("slow-stop.bin", 8 << 20, keep=0.5)  # cannot finish: it is downloading when stopped
    env = dict(env, ENGINE_RESUME_SAVE_INTERVAL="3600")  # only the shutdown can have written the final state
    with procs.daphne(env, tmp_path) as base_url, api(base_url) as client:
        job_id = client.post("/api/v1/jobs/", files={"torrent": ("t.torrent", slow.torrent_bytes)}).json()["id"]
        resume_file = tmp_path / "engine" / "resume" / f"{job_id}.resume"
        with procs.engine(env, tmp_path, name="polite") as engine:
            wait_for(lambda: Job.objects.get(pk=job_id).downloaded_bytes > 2 << 20, "some bytes", 60)
            stopped_at = time.time()
            engine.send_signal(signal.SIGTERM)
            assert engine.wait(timeout=20) == 0
    assert resume_file.exists() and resume_file.stat().st_mtime >= stopped_at - 0.5
    assert job_status(job_id) == Status.DOWNLOADING, "a stopped engine keeps its claim; it resumes on restart"
