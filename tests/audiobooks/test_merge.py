"""The book pipeline on real ffmpeg: order, sample-exact chapters, tags and cover read back, the seeding files
untouched, a ready M4B copied, damaged inputs refused or accepted as asked."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from mutagen.mp4 import MP4

from audiobooks import merge, pipeline, tags
from audiobooks.merge import BookError
from tests.audiobooks import books


def make(src: Path, *, job_id: int = 1, meta: dict | None = None, accept_damaged=False, keep_both=False,
         seen: list | None = None) -> pipeline.Outcome:
    def tell(step, done, total, overall, overall_total):
        if seen is not None:
            seen.append((step, done, total, overall, overall_total))

    return pipeline.make_book(source=src, library_root=Path(settings.AUDIOBOOK_LIBRARY_ROOT), job_id=job_id,
                              meta=meta or {}, steps=pipeline.Steps(tell), tick=lambda: None,
                              accept_damaged=accept_damaged, keep_both=keep_both)


def expected_starts(paths: list[Path], rate: int, channels: int) -> tuple[list[int], int]:
    starts, total = [], 0
    for path in paths:
        starts.append(total)
        total += books.decoded_samples(path, rate=rate, channels=channels)
    return starts, total


def only_m4b(folder: Path) -> Path:
    [m4b] = folder.glob("*.m4b")
    return m4b


def test_odd_names_mixed_rates_merge_in_natural_order_with_sample_exact_chapters(odd_book):
    before = books.tree_digest(odd_book)
    seen: list = []
    outcome = make(odd_book, meta={"series": "Saga", "sequence": "2", "description": "A tale; of #tones=."},
                   seen=seen)

    library = Path(settings.AUDIOBOOK_LIBRARY_ROOT)
    assert outcome.folder == library / "Jane Doe" / "Saga" / "Vol. 2 - 2001 - My Book {Nar Rator}"
    assert sorted(p.name for p in outcome.folder.iterdir()) == ["My Book.m4b", "cover.jpg", "desc.txt"]
    assert [p.name for p in library.iterdir()] == ["Jane Doe"]  # the staging folder is gone
    m4b = only_m4b(outcome.folder)

    # 1, 2, 10 (natural order); 48 kHz stereo (the highest rate, one source is stereo)
    ordered = [odd_book / "01 - Intro.mp3", odd_book / "2 - Part; #two=.mp3", odd_book / "10 - Ünï 'q' concat:x.m4a"]
    starts, total = expected_starts(ordered, 48000, 2)
    stream = books.audio_stream(m4b)
    assert (stream["codec_name"], int(stream["sample_rate"]), stream["channels"]) == ("aac", 48000, 2)
    assert int(stream["duration_ts"]) == total  # the playable length, to the sample
    probed = books.chapters(m4b)
    assert [t for _, _, t in probed] == ["Intro", "Two", "Ten"]
    assert [round(s * 48000) for s, _, _ in probed] == starts  # sample-exact (movie timescale = rate)
    assert round(probed[-1][1] * 48000) == total
    assert [round(c.start * 48000) for c in MP4(m4b).chapters] == starts  # mutagen agrees

    read = tags.read(m4b)
    assert read["©nam"] == read["©alb"] == ["My Book"]
    assert read["©ART"] == read["aART"] == ["Jane Doe"]
    assert read["©wrt"] == ["Nar Rator"]
    assert (read["©day"], read["©gen"], read["©grp"]) == (["2001"], ["Fantasy"], ["Saga #2"])
    assert read["----:com.apple.iTunes:SERIES"] == ["Saga"]
    assert read["----:com.apple.iTunes:SERIES-PART"] == ["2"]
    assert read["desc"] == ["A tale; of #tones=."]
    assert (outcome.folder / "desc.txt").read_text() == "A tale; of #tones=."
    cover = read["covr"][0]
    assert cover == (outcome.folder / "cover.jpg").read_bytes() and cover[:2] == b"\xff\xd8"
    width, height = (int(books.ffprobe_json(outcome.folder / "cover.jpg", "-show_streams")["streams"][0][k])
                     for k in ("width", "height"))
    assert (width, height) == (1400, 933)  # 3000x2000 capped to 1400 px, aspect kept
    # faststart: the moov atom comes before the media data
    head = m4b.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < (head.find(b"mdat") if b"mdat" in head else 10**9)

    assert books.tree_digest(odd_book) == before  # the seeding files: same bytes, same inodes, no new links
    steps = [s for s, *_ in seen]
    assert steps[0] == "checking" and "merging" in steps and steps[-2:] == ["publishing", "publishing"]
    assert ("merging", 1, 3) in [(s, d, t) for s, d, t, *_ in seen]
    assert [o for *_, o, _ in seen] == sorted(o for *_, o, _ in seen)  # overall progress only grows
    assert seen[-1][3] == seen[-1][4] - 1


def test_flac_book_and_metadata_from_the_request_win_over_tags(tmp_path):
    src = tmp_path / "dl" / "flac"
    for n in (1, 2, 3):
        books.tone(src / "CD 1" / f"track{n}.flac", 0.7 + n / 10, rate=44100, codec="flac",
                   tags={"artist": "Tag Author", "track": str(4 - n)})  # track tags reverse the names' order
    outcome = make(src, meta={"title": "Real Title", "authors": ["Kishimi, Ichiro", "Koga, Fumitake"],
                              "narrators": ["A B"], "year": 2013, "asin": "B07CMLDN8V", "isbn": "9781501197277"})
    assert outcome.folder.relative_to(settings.AUDIOBOOK_LIBRARY_ROOT).as_posix() == (
        "Kishimi, Ichiro & Koga, Fumitake/2013 - Real Title {A B}")
    m4b = only_m4b(outcome.folder)
    ordered = [src / "CD 1" / f"track{n}.flac" for n in (3, 2, 1)]
    starts, _total = expected_starts(ordered, 44100, 1)
    assert [round(s * 44100) for s, _, _ in books.chapters(m4b)] == starts
    assert [t for *_, t in books.chapters(m4b)] == ["track3", "track2", "track1"]  # no title tags: file names
    read = tags.read(m4b)
    assert read["©nam"] == ["Real Title"]
    assert read["----:com.apple.iTunes:ASIN"] == ["B07CMLDN8V"]
    assert read["----:com.apple.iTunes:ISBN"] == ["9781501197277"]
    assert "covr" not in read and not (outcome.folder / "cover.jpg").exists()


def test_a_ready_m4b_is_copied_not_re_encoded_and_keeps_its_chapters(tmp_path):
    src = tmp_path / "dl" / "ready"
    made = make(_odd_copy(tmp_path, src / "raw"), job_id=2).folder
    ready = src / "Ready.m4b"
    shutil.move(only_m4b(made), ready)
    shutil.rmtree(src / "raw")
    source_packets = books.ffprobe_json(ready, "-show_packets", "-select_streams", "a:0")["packets"]
    before = books.tree_digest(src)

    outcome = make(src, meta={"title": "Ready", "authors": ["Someone Else"]}, job_id=3)
    m4b = only_m4b(outcome.folder)
    assert outcome.book.copied
    packets = books.ffprobe_json(m4b, "-show_packets", "-select_streams", "a:0")["packets"]
    assert [p["size"] for p in packets] == [p["size"] for p in source_packets]  # the same AAC, not re-encoded
    assert books.chapters(m4b) == books.chapters(ready)
    assert tags.read(m4b)["©ART"] == ["Someone Else"]
    assert books.tree_digest(src) == before  # tagging touched the copy only


def _odd_copy(tmp_path: Path, target: Path) -> Path:
    books.tone(target / "a.mp3", 1.0, tags={"title": "One"})
    books.tone(target / "b.mp3", 1.2, tags={"title": "Two"})
    return target


def test_many_tiny_files_stay_sample_exact(tmp_path):
    src = tmp_path / "dl" / "many"
    parts = books.segments(src, 300, 0.1)
    assert len(parts) >= 299
    outcome = make(src)
    m4b = only_m4b(outcome.folder)
    probed = books.chapters(m4b)
    assert len(probed) == len(parts)
    total = int(books.audio_stream(m4b)["duration_ts"])
    assert round(probed[-1][1] * 22050) == total == outcome.book.samples
    # every chapter ends where the next starts, and the last of 300 starts where the decoded sum says
    assert all(round(a[1] * 22050) == round(b[0] * 22050) for a, b in itertools.pairwise(probed))
    assert round(probed[-1][0] * 22050) == total - books.decoded_samples(parts[-1], rate=22050, channels=1)


def test_truncated_and_garbage_files_fail_the_book_and_say_which(tmp_path):
    src = tmp_path / "dl" / "bad"
    books.tone(src / "01.mp3", 1.0)
    whole = books.tone(src / "02.mp3", 8.0)
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(BookError) as truncated:
        make(src)
    assert truncated.value.code == "damaged_file" and "02.mp3: truncated" in truncated.value.message

    (src / "03.mp3").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(BookError) as garbage:
        make(src)
    assert garbage.value.code == "bad_file" and garbage.value.message.startswith("03.mp3: not readable audio")
    library = Path(settings.AUDIOBOOK_LIBRARY_ROOT)
    assert list(library.iterdir()) == []  # nothing published, no staging left


def test_accept_damaged_leaves_out_garbage_and_keeps_what_decodes(tmp_path):
    src = tmp_path / "dl" / "bad"
    books.tone(src / "01.mp3", 1.0)
    whole = books.tone(src / "02.mp3", 8.0)
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    (src / "03.mp3").write_bytes(b"")
    outcome = make(src, accept_damaged=True)
    assert any(w.startswith("left out 03.mp3") for w in outcome.warnings)
    assert any(w.startswith("02.mp3: truncated") for w in outcome.warnings)
    assert [t for *_, t in books.chapters(only_m4b(outcome.folder))] == ["01", "02"]


def test_an_existing_book_is_never_overwritten(odd_book):
    first = make(odd_book, job_id=1)
    stamp = (first.folder / "My Book.m4b").stat().st_mtime_ns
    with pytest.raises(Exception) as clash:
        make(odd_book, job_id=2)
    assert getattr(clash.value, "code", "") == "exists"
    assert (first.folder / "My Book.m4b").stat().st_mtime_ns == stamp
    second = make(odd_book, job_id=3, keep_both=True)
    assert second.folder.name == f"{first.folder.name} (2)"


def test_output_format_never_raises_the_bitrate():
    def track(rate, channels, bit_rate):
        probe = merge.media.Probe(Path("/x"), "mp3", 1.0, bit_rate, "mp3", rate, channels)
        return merge.Track(Path("/x"), "x", probe)

    assert merge.output_format([track(22050, 1, 40_000)]) == (22050, 1, 32_000)
    assert merge.output_format([track(44100, 2, 320_000), track(22050, 1, 64_000)]) == (44100, 2, 128_000)
    assert merge.output_format([track(44100, 1, 64_000)]) == (44100, 1, 64_000)
