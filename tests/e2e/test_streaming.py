"""Streaming while downloading, end to end: daphne and `manage.py runengine` as separate processes, a loopback
tracker and a rate-limited seeder serving ffmpeg-made videos. The web process asks the engine over its
stream channel; every byte it sends is compared with the source file."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from pathlib import Path

import httpx
import pytest

from downloads.models import Job, JobFile, ProcessHeartbeat
from downloads.swarm import make_torrent
from tests import procs
from tests.accounts.factories import ApiKeyFactory, UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.e2e.conftest import wait_for
from tests.streaming.media import make_video

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ALICE = "flt_e2e_stream_a" + "a" * 33
BOB = "flt_e2e_stream_b" + "b" * 33
PIECE = 64 * 1024  # many small pieces: a range maps to a handful of them, so order matters and shows


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture
def people(user, other_user):
    ApiKeyFactory(user=user, raw=ALICE)
    ApiKeyFactory(user=other_user, raw=BOB)
    for person in (user, other_user):  # seed briefly: the jobs end while the test looks at them otherwise
        PlanAssignmentFactory(user=person, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0,
                                                            max_concurrent_streams=10))
    return user, other_user


@pytest.fixture
def env(env):
    env["STREAM_TIMEOUT"] = "4"
    return env


def publish(seeder, tracker, tmp_path: Path, source: Path, name: str, *, limit: int | None, seed: bool = True):
    """Seed a copy of `source` as `name` (single-file torrent, 64 KiB pieces); returns the .torrent bytes."""
    folder = tmp_path / "seed"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(source.read_bytes())
    torrent = make_torrent(folder / name, [tracker.announce_url], PIECE)
    if seed:
        seeder.add(torrent, folder, upload_limit=limit)
    return torrent


def add_job(base_url: str, key: str, torrent: bytes, *, seeded: bool = True) -> int:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {key}"}, timeout=30) as client:
        response = client.post("/api/v1/jobs/", files={"torrent": ("t.torrent", torrent)})
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
    wait_for(lambda: JobFile.objects.filter(job_id=job_id).exists() and Job.objects.get(pk=job_id).claimed_by,
             "the engine holds the job and knows its files", 60)
    wait_for(lambda: ProcessHeartbeat.objects.filter(info__stream_address__isnull=False).exists(),
             "the engine published its stream channel", 30)
    if seeded:  # the engine found the seeder (through the tracker): from here on, pieces can arrive
        wait_for(lambda: Job.objects.get(pk=job_id).peers > 0 or downloaded(job_id) > 0, "a peer", 60)
    return job_id


def fetch(base_url: str, key: str, job_id: int, range_: str | None = None, timeout: float = 60) -> httpx.Response:
    headers = {"Authorization": f"Token {key}"}
    if range_:
        headers["Range"] = range_
    return httpx.get(f"{base_url}/api/v1/stream/{job_id}", headers=headers, timeout=timeout)


def fetch_as_a_player(base_url: str, key: str, job_id: int, range_: str, deadline: float = 120) -> httpx.Response:
    """`fetch`, asked again after a 408 as a player does: on a loaded machine (CI runs a second copy of the
    suite at the same time) the first piece may come later than STREAM_TIMEOUT."""
    give_up = time.monotonic() + deadline
    while (answer := fetch(base_url, key, job_id, range_)).status_code == 408:
        assert time.monotonic() < give_up, f"still 408 after {deadline} s"
    return answer


def play(base_url: str, key: str, job_id: int, size: int, *, first: int = 0, last: int | None = None,
         deadline: float = 180) -> bytes:
    """Read a file (or bytes first..last) the way a player does: a body the server ends early (a piece slower than
    STREAM_TIMEOUT, which ends the response by design) is resumed with a Range from the first byte not yet
    received. Such an end is seen at once (chunked): no read timeout is forgiven, a stall fails the test."""
    last = size - 1 if last is None else last
    got = bytearray()
    give_up = time.monotonic() + deadline
    headers = {"Authorization": f"Token {key}"}
    while first + len(got) <= last:
        assert time.monotonic() < give_up, f"only {len(got)} of {last - first + 1} bytes after {deadline} s"
        at = first + len(got)
        headers["Range"] = f"bytes={at}-" if last == size - 1 else f"bytes={at}-{last}"
        try:
            with httpx.stream("GET", f"{base_url}/api/v1/stream/{job_id}", headers=headers, timeout=30) as response:
                if response.status_code in (408, 503):  # late piece, or busy (503 + Retry-After): ask again
                    continue
                assert response.status_code == 206, response.status_code
                assert response.headers["content-range"] == f"bytes {at}-{last}/{size}"
                for chunk in response.iter_bytes():
                    got += chunk
        except httpx.RemoteProtocolError:
            continue  # cut short by a proxy or a restart: resume from what arrived
    return bytes(got)


def downloaded(job_id: int) -> int:
    return JobFile.objects.filter(job_id=job_id).values_list("completed_bytes", flat=True).first() or 0


def test_ranges_while_downloading_equal_the_source_seek_to_the_end_first(people, env, tmp_path, videos, tracker,
                                                                         seeder, leecher):
    source = make_video(videos, "1080p30", faststart=False)  # moov at the end: players read the tail first
    data = source.read_bytes()
    size = len(data)
    torrent = publish(seeder, tracker, tmp_path, source, "film.mp4", limit=None, seed=False)
    # Until the middle has been served, the only peer lacks one piece in the first quarter, which no read before
    # the whole file asks for: the download cannot finish first, whatever the machine's load.
    withheld = size // 4 // PIECE
    pieces = -(-size // PIECE)
    leecher.offer_part(torrent, data, tmp_path / "partial", "film.mp4", PIECE,
                       [n for n in range(pieces) if n != withheld], upload_limit=384 * 1024)
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path):
        job_id = add_job(base_url, ALICE, torrent)

        tail = fetch_as_a_player(base_url, ALICE, job_id, "bytes=-100000")
        assert tail.status_code == 206, tail.text
        # A piece later than STREAM_TIMEOUT ends a body early by design: the rest is asked for as a player would.
        assert tail.content and data[-100000:].startswith(tail.content)
        assert tail.content + play(base_url, ALICE, job_id, size, first=size - 100000 + len(tail.content)) \
            == data[-100000:]
        assert tail.headers["content-range"] == f"bytes {size - 100000}-{size - 1}/{size}"
        assert tail.headers["content-type"] == "video/mp4" and tail.headers["x-stream-source"] == "engine"
        assert tail.headers["accept-ranges"] == "bytes" and tail.headers["content-disposition"].startswith("inline")
        assert downloaded(job_id) < size, "the end was served before the download finished"

        middle = play(base_url, ALICE, job_id, size, first=size // 2, last=size // 2 + 300_000)
        assert middle == data[size // 2: size // 2 + 300_001]
        assert downloaded(job_id) < size, "the middle was served before the download finished"

        seeder.add(torrent, tmp_path / "seed")  # the withheld piece enters the swarm
        head = play(base_url, ALICE, job_id, size)
        assert hashlib.sha256(head).hexdigest() == hashlib.sha256(data).hexdigest()

        whole = fetch(base_url, ALICE, job_id)
        assert whole.status_code == 200 and whole.content == data


def test_a_missing_piece_arrives_once_the_seeder_sends_it_and_a_dead_seeder_is_408(people, env, tmp_path, videos,
                                                                                   tracker, seeder):
    source = make_video(videos, "720p10")
    data = source.read_bytes()
    torrent = publish(seeder, tracker, tmp_path, source, "clip.mp4", limit=None, seed=False)
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path):
        job_id = add_job(base_url, ALICE, torrent, seeded=False)

        # Nobody seeds yet: within STREAM_TIMEOUT (4 s here) the first needed piece does not come.
        began = time.monotonic()
        refused = fetch(base_url, ALICE, job_id, "bytes=500000-599999")
        assert refused.status_code == 408 and refused.json()["code"] == "stream_timeout"
        assert time.monotonic() - began >= 3.5

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(fetch, base_url, ALICE, job_id, "bytes=500000-599999")
            seeder.add(torrent, tmp_path / "seed")  # now the piece exists in the swarm
            answer = waiting.result(timeout=60)
        assert answer.status_code == 206 and answer.content == data[500000:600000]


def test_dead_seeder_mid_download_is_408_for_what_never_arrived(people, env, tmp_path, videos, tracker, leecher):
    """The only peer holds the first two fifths of the file and dies once the head has played: a range in the
    last fifths was never in the swarm and answers 408. With a full seeder the test raced it: on a loaded machine
    the head took long enough for the late piece to arrive too (206 in CI with a second copy of the suite)."""
    source = make_video(videos, "1080p30")
    data = source.read_bytes()
    torrent = publish(None, tracker, tmp_path, source, "dead.mp4", limit=None, seed=False)
    leecher.offer_part(torrent, data, tmp_path / "partial", "dead.mp4", PIECE, range(len(data) * 2 // 5 // PIECE),
                       upload_limit=96 * 1024)
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path):
        job_id = add_job(base_url, ALICE, torrent)
        # The head as a player reads it: on a loaded machine the first piece may come after STREAM_TIMEOUT
        # (408), and a player asks again (seen in CI with a second copy of the suite running).
        assert play(base_url, ALICE, job_id, len(data), last=65535) == data[:65536]
        leecher.close()  # the only peer dies
        late = fetch(base_url, ALICE, job_id, f"bytes={len(data) * 3 // 5}-")
        assert late.status_code == 408, late.text[:200]


def test_a_piece_that_never_comes_ends_the_body_at_stream_timeout_not_at_the_clients_timeout(people, env, tmp_path,
                                                                                             videos, tracker, seeder):
    """The first half of the file is on disk before the engine starts (libtorrent checks it), nobody seeds the
    rest: the body holds the verified half and then ends, one STREAM_TIMEOUT (4 s) later, where the client sees
    it. With a Content-Length the client waited for the missing bytes until its own read timeout (60 s here)."""
    source = make_video(videos, "720p10")
    data = source.read_bytes()
    torrent = publish(seeder, tracker, tmp_path, source, "half.mp4", limit=None, seed=False)
    have = len(data) // 2 // PIECE * PIECE
    with procs.daphne(env, tmp_path) as base_url:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {ALICE}"}, timeout=30) as client:
            created = client.post("/api/v1/jobs/", files={"torrent": ("t.torrent", torrent)})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        folder = tmp_path / "downloads" / str(Job.objects.get(pk=job_id).user_id) / str(job_id)
        folder.mkdir(parents=True)
        (folder / "half.mp4").write_bytes(data[:have])
        with procs.engine(env, tmp_path):
            wait_for(lambda: downloaded(job_id) >= have, "the engine found the half on disk", 60)
            wait_for(lambda: ProcessHeartbeat.objects.filter(info__stream_address__isnull=False).exists(),
                     "the engine published its stream channel", 30)
            began = time.monotonic()
            with httpx.stream("GET", f"{base_url}/api/v1/stream/{job_id}", timeout=60,
                              headers={"Authorization": f"Token {ALICE}", "Range": "bytes=0-"}) as response:
                assert response.status_code == 206
                assert response.headers["content-range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
                assert "content-length" not in response.headers  # chunked: an early end is an end
                body = response.read()
            took = time.monotonic() - began
    assert body == data[:have]
    assert 3.5 <= took < 20, took  # one STREAM_TIMEOUT for the missing piece, far from the client's 60 s


def test_five_users_stream_five_files_at_once_and_the_limits_hold(people, env, tmp_path, videos, tracker, seeder):
    _, bob = people
    keys = [ALICE, BOB]
    for n in range(3):  # three more users, each with a key and the same plan
        key = f"flt_e2e_stream_{n}" + str(n) * 33
        person = UserFactory()
        ApiKeyFactory(user=person, raw=key)
        PlanAssignmentFactory(user=person, plan=PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0,
                                                            max_concurrent_streams=10))
        keys.append(key)
    sources = {"a.mp4": make_video(videos, "720p10"), "b.mp4": make_video(videos, "720p10", faststart=False),
               "c.mp4": make_video(videos, "1080p30"), "d.mp4": make_video(videos, "1080p30", faststart=False),
               "e.mp4": make_video(videos, "720p10")}  # e: a's bytes under another name, so another torrent
    torrents = {name: publish(seeder, tracker, tmp_path, path, name, limit=512 * 1024)
                for name, path in sources.items()}
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path):
        owners = dict(zip(sources, keys, strict=True))
        jobs = {name: add_job(base_url, owners[name], torrents[name]) for name in sources}

        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            futures = {name: pool.submit(play, base_url, owners[name], job_id, sources[name].stat().st_size)
                       for name, job_id in jobs.items()}
            for name, future in futures.items():
                assert future.result() == sources[name].read_bytes(), name

        # Not yours: 404; no credentials: 401; a malformed Range: 416.
        assert fetch(base_url, ALICE, jobs["b.mp4"]).status_code == 404
        assert httpx.get(f"{base_url}/api/v1/stream/{jobs['a.mp4']}", timeout=30).status_code == 401
        bad = fetch(base_url, ALICE, jobs["a.mp4"], "bytes=x-y")
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{sources['a.mp4'].stat().st_size}"

        # Over the plan's concurrent streams: 503 with Retry-After while one is still open. The open one waits
        # for a piece nobody seeds (a torrent never published), so it holds bob's one slot for STREAM_TIMEOUT.
        plan = bob.plan_assignments.first().plan
        plan.max_concurrent_streams = 1
        plan.save()
        lonely = publish(seeder, tracker, tmp_path, sources["a.mp4"], "lonely.mp4", limit=None, seed=False)
        lonely_job = add_job(base_url, BOB, lonely, seeded=False)
        stats_url = f"{base_url}/api/v1/stream/{lonely_job}/{JobFile.objects.get(job_id=lonely_job).pk}/stats/"
        with concurrent.futures.ThreadPoolExecutor(1) as pool, \
                httpx.Client(headers={"Authorization": f"Token {BOB}"}, timeout=30) as client:
            held = pool.submit(fetch, base_url, BOB, lonely_job)
            wait_for(lambda: client.get(stats_url).json()["active_streams"] == 1, "the first stream holds a slot", 10)
            refused = client.get(f"{base_url}/api/v1/stream/{jobs['b.mp4']}")
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
            assert refused.json()["code"] == "too_many_streams"
            assert held.result(timeout=60).status_code == 408
            again = client.get(f"{base_url}/api/v1/stream/{jobs['b.mp4']}", headers={"Range": "bytes=0-9"})
            assert again.status_code == 206, "the slot is free once the first stream ended"
