"""The product's audiobook flow end to end: AudioBookRequest's calls on Flotilla's Prowlarr API (search, grab
with `downloadClientId`) find a book on the MyAnonamouse fake, whose `.torrent` is a private torrent of a
generated multi-file MP3 book (loopback tracker, loopback seeder); the job runs on the user's real
transmission-daemon (a path mapping to a local folder), with the client's own stop limits off (read back from
the daemon); once complete, the real ffmpeg merges it and the book appears in the user's library folder as
`<Author>/<Series>/Vol. N - YYYY - Title {Narrator}/Title.m4b`, one chapter per file, tagged, with the tracker's
poster as its cover (the torrent has none), while the seeding files stay byte for byte what the tracker's
torrent says and the torrent keeps seeding.

The worker's part runs in-process (`tick`: the compliance sweep, dispatch, sync and the queued runs), as in
tests/e2e/test_prowlarr_grab.py's transmission test."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import transmission_rpc
from django.test import Client
from mutagen.mp4 import MP4

from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerRules
from audiobooks.models import AudiobookJob, AudiobookSettings
from billing.services import current_plan
from downloads.models import Job, Status
from downloads.swarm import make_torrent
from indexers.models import JobSource
from servers import clients as server_clients
from tests.accounts.factories import ApiKeyFactory
from tests.audiobooks import books
from tests.audiobooks.presets import ensure_mam_rules
from tests.e2e.conftest import wait_for
from tests.indexers import prowlarr_client as abr
from tests.indexers.conftest import mam_indexer
from tests.servers import daemons
from tests.servers.conftest import drive, server_for

pytestmark = [pytest.mark.e2e]

KEY = "flt_e2e_audiobook" + "a" * 32
TITLE, AUTHOR, NARRATOR, SERIES = "The Tone Saga", "Ann Author", "Ray Reader", "Sine Cycle"
CHAPTERS = [("01 - Opening.mp3", 1.5, 440), ("02 - Middle.mp3", 2.0, 550), ("10 - Ending.mp3", 1.25, 660)]


@pytest.fixture
def alice(user, settings, tmp_path):
    settings.AUDIOBOOK_LIBRARY_ROOT = str(tmp_path / "library")
    settings.INDEXERS_RATE_LIMITER = "database"
    ApiKeyFactory(user=user, raw=KEY)
    plan = current_plan(user)
    # The plan's own limits would stop a torrent once downloaded: the tracker's rules must win over them.
    plan.seed_ratio_limit, plan.seed_time_limit_minutes, plan.max_active_jobs = 0, 0, 10
    plan.save()
    AudiobookSettings.objects.create(user=user, library_dir="alice", process_grabs=True)
    return user


@pytest.fixture
def mam(mam):
    mam.unsat_count, mam.unsat_limit = 0, 20
    return mam


@pytest.fixture
def transmission(tmp_path):
    with daemons.running("transmission", tmp_path / "tr") as daemon:
        yield daemon


def mp3_book(folder: Path) -> dict[str, str]:
    """The book's files, as the uploader's: MP3 tones of known lengths, the year in the tags."""
    for name, seconds, freq in CHAPTERS:
        books.tone(folder / name, seconds, freq=freq, tags={"title": name[5:-4], "date": "2019"})
    return {f"{folder.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def rpc(daemon: daemons.Daemon) -> transmission_rpc.Client:
    return transmission_rpc.Client(host="127.0.0.1", port=daemon.rpc_port, username=daemon.username,
                                   password=daemon.password, timeout=10)


def tick() -> None:
    """What the worker does on its schedule, in-process: the compliance round, dispatch, sync, queued runs."""
    compliance.sweep()
    drive()


@pytest.mark.django_db(transaction=True)
def test_audiobookrequest_grab_becomes_a_published_book_while_transmission_keeps_seeding(
        alice, mam, transmission, swarm, tmp_path):
    ensure_mam_rules()  # the shipped preset (a transactional test before this one flushed it)
    TrackerRules.objects.filter(tracker="myanonamouse").update(min_seed_time=dt.timedelta(hours=72))
    # The uploader's book, seeded from the loopback seeder; the tracker hands out a private .torrent of it.
    name = "Ann Author - The Tone Saga"
    source_files = mp3_book(swarm.payload_dir / name)
    torrent = make_torrent(swarm.payload_dir / name, [swarm.tracker.announce_url], private=True)
    swarm.seeder.add(torrent, swarm.payload_dir)
    poster = books.jpeg(tmp_path / "poster.jpg", 600, 900).read_bytes()  # the torrent has no cover: the tracker's
    mam.add(TITLE, authors=(AUTHOR,), narrators=(NARRATOR,), series=(SERIES, "2"), filetype="mp3",
            size="90 KiB", torrent=torrent, cover=poster)
    indexer = mam_indexer(mam, alice)
    # Alice's transmission, its download folder mapped to the same folder here (a local disk).
    server = server_for(transmission, alice, remote_path=str(transmission.download_dir),
                        local_path=str(transmission.download_dir))
    client = Client()
    daemon = rpc(transmission)
    try:
        found = client.get(abr.search_url("/prowlarr", "tone saga", [3030], [indexer.pk]),
                           headers=abr.key_headers(KEY, accept_json=True))
        assert found.status_code == 200, found.content
        [release] = abr.validate_search(found.json())
        assert release["title"] == f"{TITLE} by {AUTHOR} [ENG / MP3]"
        grabbed = client.post("/prowlarr/api/v1/search", content_type="application/json",
                              headers=abr.key_headers(KEY),
                              data={"guid": release["guid"], "indexerId": indexer.pk, "downloadClientId": server.pk})
        assert grabbed.status_code == 200, grabbed.content
        job = JobSource.objects.select_related("job").get(indexer=indexer).job
        assert job.backend == server.backend_name and job.is_private
        book = AudiobookJob.objects.get(job=job)  # the grab made it a book, with the tracker's metadata
        assert (book.title, book.authors, book.narrators, book.series, book.sequence) == (
            TITLE, [AUTHOR], [NARRATOR], SERIES, "2")

        wait_for(lambda: (tick(), Job.objects.get(pk=job.pk).status != Status.QUEUED)[1], "the grab started", 30)
        fields = daemon.get_torrent(job.info_hash, arguments=["seedRatioMode", "seedIdleMode"]).fields
        assert (fields["seedRatioMode"], fields["seedIdleMode"]) == (2, 2)  # it never stops by itself

        # Transmission never dials 127.x peers (servers research §4.2): the seeder dials it.
        swarm.seeder.connect(job.info_hash, ("127.0.0.1", transmission.peer_port))
        wait_for(lambda: (tick(), Job.objects.get(pk=job.pk).status in (Status.COMPLETED, Status.FAILED))[1],
                 "the download completes and the book is made", 45)
        job.refresh_from_db()
        book.refresh_from_db()
        assert (job.status, book.state, book.error) == (Status.COMPLETED, "published", ""), job.reason

        library = tmp_path / "library" / "alice"
        folder = library / AUTHOR / SERIES / f"Vol. 2 - 2019 - {TITLE} {{{NARRATOR}}}"
        m4b = folder / f"{TITLE}.m4b"
        assert Path(book.published_path) == folder and m4b.is_file(), sorted(map(str, library.rglob("*")))
        assert not [p for p in library.iterdir() if p.name.startswith(".")]  # no staging left behind
        chapters = books.chapters(m4b)
        assert [c[2] for c in chapters] == ["Opening", "Middle", "Ending"]  # one per file, natural order
        for (start, end, _), (_, seconds, _) in zip(chapters, CHAPTERS, strict=True):
            assert end - start == pytest.approx(seconds, abs=0.06)  # MP3 decoder delay trimmed, not sample
        [cover] = books.ffprobe_json(folder / "cover.jpg", "-show_streams")["streams"]
        assert (cover["codec_name"], cover["width"], cover["height"]) == ("mjpeg", 600, 900)  # the tracker's
        tags = MP4(m4b).tags
        assert bytes(tags["covr"][0]) == (folder / "cover.jpg").read_bytes()
        assert tags["\xa9nam"] == [TITLE] and tags["\xa9ART"] == [AUTHOR] and tags["\xa9day"] == ["2019"]
        assert NARRATOR in tags["\xa9wrt"] and tags["----:com.apple.iTunes:SERIES"] == [SERIES.encode()]
        assert tags["----:com.apple.iTunes:SERIES-PART"] == [b"2"]

        # The seeding files are the torrent's, unchanged; the torrent goes on seeding in transmission.
        for path, digest in source_files.items():
            assert hashlib.sha256((transmission.download_dir / path).read_bytes()).hexdigest() == digest
        seeding = daemon.get_torrent(job.info_hash, arguments=["status", "percentDone", "seedRatioMode"]).fields
        assert (seeding["status"], seeding["percentDone"], seeding["seedRatioMode"]) == (6, 1, 2)  # 6: seeding
        wait_for(lambda: (compliance.sync_ledgers(), SeedingLedger.objects.filter(
            job=job, completed_at__isnull=False).exists())[1], "the ledger counts the seeding torrent", 15)
        assert not SeedingLedger.objects.get(job=job).satisfied  # 72 h ahead: it must not leave the client
    finally:
        daemon._http_session.close()
        server_clients.forget(server.pk)
