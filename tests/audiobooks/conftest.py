from __future__ import annotations

import shutil

import pytest

from tests.audiobooks import books, presets


@pytest.fixture(autouse=True)
def _library_root(settings, tmp_path):
    """Each test's own operator-allowed library root."""
    settings.AUDIOBOOK_LIBRARY_ROOT = str(tmp_path / "library")
    (tmp_path / "library").mkdir()
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "ffmpeg is a test package (Makefile TEST_DEBS)"


@pytest.fixture(autouse=True)
def _mam_preset(request):
    """The MyAnonamouse rules preset, for tests with a database (an earlier transactional test flushed it)."""
    if request.node.get_closest_marker("django_db") is not None:
        request.getfixturevalue("db" if not _transactional(request) else "transactional_db")
        presets.ensure_mam_rules()


def _transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction"))


@pytest.fixture
def odd_book(tmp_path):
    """Three MP3/M4A files with odd names, mixed rates and channels, tags on the first, a big cover."""
    src = tmp_path / "dl" / "My Book"
    books.tone(src / "01 - Intro.mp3", 1.5, tags={"title": "Intro", "album": "My Book", "artist": "Jane Doe",
                                                   "composer": "Nar Rator", "date": "2001", "genre": "Fantasy"})
    books.tone(src / "2 - Part; #two=.mp3", 2.25, rate=22050, freq=600, tags={"title": "Two"})
    books.tone(src / "10 - Ünï 'q' concat:x.m4a", 1.0, rate=48000, channels=2, codec="aac", freq=800,
               tags={"title": "Ten"})
    books.jpeg(src / "cover.jpg", 3000, 2000)
    return src
