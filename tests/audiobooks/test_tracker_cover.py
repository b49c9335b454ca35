"""The tracker's cover for a download without one: MyAnonamouse's poster (the `poster_type` of its search row →
`cover_url` on the book), fetched through the fake with the user's session, only from the tracker's cover
host, read capped in bytes, its pixel count checked from the header before any decoding, decoded and
re-encoded to a scaled JPEG. Hostile covers leave the book without one (a warning), never fail it."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from mutagen.mp4 import MP4

from audiobooks import covers, merge, pipeline, services
from audiobooks.models import AudiobookJob
from downloads import finish
from downloads.models import Status
from indexers.clients.myanonamouse import MyAnonamouseClient
from indexers.models import JobSource
from tests.audiobooks import books
from tests.audiobooks.test_processor import job_with_book
from tests.downloads.runs import run_postprocess
from tests.fakes.mam_fake import FakeMam
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexer(user, mam, settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    return IndexerFactory(owner=user, kind="myanonamouse", url=mam.base_url, request_interval=0,
                          credentials=json.dumps({"mam_id": mam.new_session()}))


@pytest.fixture
def bare_book(tmp_path) -> Path:
    """One MP3 with no picture, no image beside it."""
    src = tmp_path / "dl" / "Bare Book"
    books.tone(src / "01.mp3", 1.0, tags={"title": "One"})
    return src


def jpeg_bytes(tmp_path: Path, width: int, height: int) -> bytes:
    return books.jpeg(tmp_path / f"poster-{width}x{height}.jpg", width, height).read_bytes()


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (one compressed row of data): decoding it would need gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def book_for(user, indexer, mam, source: Path, **cover) -> tuple[AudiobookJob, int]:
    """A grabbed job from the fake whose search row says it has a poster; the book made with its metadata."""
    tid = mam.add(source.name, **cover)
    job = job_with_book(user, source)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name="MAM", title=source.name,
                             guid=f"https://www.myanonamouse.net/t/{tid}")
    client = MyAnonamouseClient(url=mam.base_url, secrets={}, deadline=0, allow_internal=True)
    cover_url = client.release(mam.torrents[tid]).extra["cover_url"]  # as a search stored it
    return services.mark(user, job, title=source.name, authors=["Ann Author"], cover_url=cover_url), tid


def posters(mam: FakeMam) -> list[dict]:
    return [r for r in mam.requests if r["path"].startswith("/t/p/")]


def test_the_trackers_poster_becomes_the_books_scaled_cover(user, indexer, mam, bare_book, tmp_path):
    book, tid = book_for(user, indexer, mam, bare_book, cover=jpeg_bytes(tmp_path, 3000, 2000))
    assert book.cover_url == f"{mam.base_url}/t/p/large/{tid}.jpeg"
    finish.finish(book.job)
    assert run_postprocess(book.job_id) == 1
    book.refresh_from_db()
    assert (book.job.status, book.state, book.warnings) == (Status.COMPLETED, "published", [])
    folder = Path(book.published_path)
    cover = books.ffprobe_json(folder / "cover.jpg", "-show_streams")["streams"][0]
    assert (cover["codec_name"], cover["width"], cover["height"]) == ("mjpeg", 1400, 933)  # scaled, re-encoded
    [embedded] = MP4(folder / "Bare Book.m4b").tags["covr"]
    assert bytes(embedded) == (folder / "cover.jpg").read_bytes()
    [request] = posters(mam)
    assert request["headers"]["Cookie"].startswith("mam_id=")  # fetched with the session


def test_a_cover_in_the_download_wins_and_the_tracker_is_not_asked(user, indexer, mam, odd_book, tmp_path):
    book, _ = book_for(user, indexer, mam, odd_book, cover=jpeg_bytes(tmp_path, 300, 300))
    outcome_cover = _cover_of(book)
    assert outcome_cover is not None and not posters(mam)


def _cover_of(book: AudiobookJob, warnings: list[str] | None = None) -> bytes | None:
    """The pipeline's cover step alone for `book` (its files checked as the pipeline does)."""
    warnings = [] if warnings is None else warnings
    source = book.job.data_dir
    tracks, _ = merge.check(source, lambda *_: None, accept_damaged=False)
    work = Path(str(source) + "-work")
    work.mkdir(exist_ok=True)
    return pipeline._cover(source, tracks, work, warnings, lambda: covers.from_tracker(book))


@pytest.mark.parametrize(("name", "cover", "warning"), [
    ("decompression bomb", png_bomb(15_000, 15_000), "15000x15000 px is too large"),
    ("bomb past ffmpeg's own limit", png_bomb(30_000, 30_000), "the image's size is unreadable"),
    ("not an image (an HLS playlist)", b"#EXTM3U\n#EXTINF:1,\n/etc/passwd\n", "not an image"),
    ("truncated JPEG header", b"\xff\xd8\xff\xe0\x00\x10JFIF", "cover left out"),
])
def test_hostile_tracker_covers_are_left_out(user, indexer, mam, bare_book, name, cover, warning):
    book, _ = book_for(user, indexer, mam, bare_book, cover=cover)
    warnings: list[str] = []
    assert _cover_of(book, warnings) is None, name
    assert len(warnings) == 1 and warning in warnings[0], warnings


def test_a_cover_larger_than_the_byte_cap_is_not_read(user, indexer, mam, bare_book, settings):
    settings.AUDIOBOOK_COVER_MAX_BYTES = 50_000
    book, _ = book_for(user, indexer, mam, bare_book, cover=b"\xff\xd8" + b"\x00" * covers.fetch_limit())
    warnings: list[str] = []
    assert _cover_of(book, warnings) is None
    assert "larger than 200000 bytes" in warnings[0]


def test_the_session_goes_to_the_trackers_cover_host_only(user, indexer, mam, bare_book, tmp_path):
    book, _ = book_for(user, indexer, mam, bare_book, cover=jpeg_bytes(tmp_path, 100, 100))
    AudiobookJob.objects.filter(pk=book.pk).update(cover_url="http://127.0.0.1:9/t/p/large/1.jpeg")
    book.refresh_from_db()
    warnings: list[str] = []
    assert _cover_of(book, warnings) is None and not posters(mam)
    assert "Not a MyAnonamouse cover address" in warnings[0]
