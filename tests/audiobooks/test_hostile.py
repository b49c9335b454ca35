"""Hostile inputs from the research table (§5), each on the real ffmpeg: an HLS playlist named .mp3, `../` and
over-long names, a title `../../x`, a 1,001-file book, a disk that fills mid-merge."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from audiobooks import library
from audiobooks.merge import BookError
from tests.audiobooks import books
from tests.audiobooks.test_merge import make, only_m4b


def test_an_hls_playlist_named_mp3_cannot_read_other_files(tmp_path):
    secret = books.tone(tmp_path / "secret" / "private.mp3", 5.0, freq=1000)
    src = tmp_path / "dl" / "hls"
    books.tone(src / "01.mp3", 1.0)
    (src / "02.mp3").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5.0,\nfile:{secret}\n#EXT-X-ENDLIST\n")
    with pytest.raises(BookError) as refused:
        make(src)
    assert refused.value.code == "bad_file" and refused.value.message.startswith("02.mp3")
    outcome = make(src, accept_damaged=True)
    assert outcome.book.samples == books.decoded_samples(src / "01.mp3", rate=44100, channels=1)  # no secret


def test_symlinks_in_the_download_are_not_followed(tmp_path):
    outside = books.tone(tmp_path / "elsewhere" / "x.mp3", 3.0)
    src = tmp_path / "dl" / "links"
    books.tone(src / "01.mp3", 1.0)
    (src / "02.mp3").symlink_to(outside)
    outcome = make(src)
    assert [c.title for c in outcome.book.chapters] == ["01"]


@pytest.mark.parametrize(("title", "expected"), [
    ("../../x", "_.._x"),
    ("AC/DC", "AC_DC"),
    (".hidden", "hidden"),
    ("x" * 300, "x" * 251),
    ("長" * 100, "長" * 83),  # 255 bytes of UTF-8, cut on a character boundary
    ("\x00\n", "_"),
])
def test_titles_become_one_safe_component(title, expected):
    parts = library.book_parts(library.Naming(title=title, authors=("../A",)))
    assert parts[0] == "_A" and parts[-1] == f"{expected}.m4b"
    assert all(len(p.encode()) <= 255 and "/" not in p and not p.startswith(".") for p in parts)


def test_a_hostile_title_is_published_inside_the_library(odd_book):
    outcome = make(odd_book, meta={"title": "../../x", "authors": ["../../../etc"], "narrators": ["{a}/b"]})
    root = Path(settings.AUDIOBOOK_LIBRARY_ROOT).resolve()
    assert root in outcome.folder.resolve().parents
    assert outcome.folder.relative_to(root).as_posix() == "_.._.._etc/2001 - .._.._x {(a)_b}"  # one component each
    assert only_m4b(outcome.folder).name == "_.._x.m4b"


def test_a_user_library_outside_the_root_is_refused(tmp_path):
    with pytest.raises(library.LibraryError) as refused:
        library.user_library("../outside")
    assert refused.value.code == "library_outside_root"
    assert library.user_library("alice/books") == Path(settings.AUDIOBOOK_LIBRARY_ROOT).resolve() / "alice/books"


def test_a_1001_file_book_is_refused_before_any_work(tmp_path, settings):
    src = tmp_path / "dl" / "huge"
    src.mkdir(parents=True)
    for n in range(1001):
        (src / f"{n:04d}.mp3").write_bytes(b"")
    with pytest.raises(BookError) as refused:
        make(src)
    assert refused.value.code == "too_many_files" and "1001 audio files" in refused.value.message


def test_a_disk_that_fills_mid_merge_fails_cleanly(tmp_path, settings):
    """RLIMIT_FSIZE on ffmpeg (the real mechanism the merge uses to cap its output) stops the write part way,
    as a full disk would: the job fails with disk_full, nothing is published, no staging is left."""
    settings.AUDIOBOOK_OUTPUT_LIMIT_BYTES = 16 * 1024
    src = tmp_path / "dl" / "big"
    books.tone(src / "01.mp3", 6.0)
    books.tone(src / "02.mp3", 6.0)
    before = books.tree_digest(src)
    with pytest.raises(BookError) as full:
        make(src)
    assert full.value.code == "disk_full"
    assert list(Path(settings.AUDIOBOOK_LIBRARY_ROOT).iterdir()) == []
    assert books.tree_digest(src) == before
