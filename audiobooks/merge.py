"""From a download's audio files to one M4B with chapters (the research's route C).

Each input is decoded in turn to PCM and piped into ONE AAC encoder; chapter `k` starts at the running
count of decoded samples, so chapters cannot drift (per-file encodes each add ~1,024 samples of AAC priming:
~14 s off by file 300 in m4b-tool's reports). The chapters are then remuxed in from an ffmetadata file with
the audio stream copied and the moov atom first (faststart). A single M4B that is already AAC is copied.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from audiobooks import media
from audiobooks.media import MediaError, Probe

AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".m4b", ".mp4", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wma"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})
BITRATES = (32_000, 48_000, 64_000, 96_000, 128_000)
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Decoded length below header duration * ratio - slack: a truncated upload (research §5). The slack covers
# encoder delay and padding, which headers count (~0.1 s for a 22 kHz MP3): it matters only for tiny files.
TRUNCATED_RATIO, TRUNCATED_SLACK = 0.98, 0.25
_DISC_DIR = re.compile(r"(?:^|[\s_-])(?:cd|dis[ck])\s*(\d{1,3})\b", re.IGNORECASE)
_DIGITS = re.compile(r"(\d+)")

# A function told (step, done, total) as the work goes: "checking", "merging".
Progress = Callable[[str, int, int], None]


class BookError(Exception):
    """The book cannot be made; `code` goes on the job (audiobook_<code>), the message says which file."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass
class Track:
    path: Path
    relative: str
    probe: Probe
    samples: int = 0  # decoded, at the book's rate
    damaged: str = ""


@dataclass
class Chapter:
    start: int  # samples
    end: int
    title: str


@dataclass
class Book:
    """What the merge made: the M4B in staging, its chapters and what it skipped or flagged."""

    path: Path
    rate: int
    samples: int
    chapters: list[Chapter]
    tracks: list[Track]
    copied: bool = False
    warnings: list[str] = field(default_factory=list)


def natural_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part.casefold() for part in _DIGITS.split(text))


def _number(value: str) -> int | None:
    match = _DIGITS.match(value.strip())
    return int(match.group(1)) if match else None


def _disc(track: Track) -> int:
    tagged = _number(track.probe.tag("disc", "discnumber", "disk", "tpos"))
    if tagged is not None:
        return tagged
    for part in reversed(Path(track.relative).parent.parts):
        if match := _DISC_DIR.search(part):
            return int(match.group(1))
    return 0


def order(tracks: list[Track]) -> list[Track]:
    """Disc, then track, then the path in natural order. Track tags count only when every file has one and
    no two files share (disc, track): one missing or duplicated tag means the tags are not to be trusted."""
    discs = {id(t): _disc(t) for t in tracks}
    numbers = {id(t): _number(t.probe.tag("track", "trck", "trk")) for t in tracks}
    keys = [(discs[id(t)], numbers[id(t)]) for t in tracks]
    trusted = all(n is not None for _, n in keys) and len(set(keys)) == len(keys)
    return sorted(tracks, key=lambda t: (discs[id(t)], numbers[id(t)] if trusted else 0, natural_key(t.relative)))


def audio_files(root: Path) -> list[tuple[Path, str]]:
    """(absolute path, relative path) of every audio file under root, symlinks and dot-paths left out."""
    found = []
    for path in media.walk_files(root):
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() in AUDIO_EXTENSIONS and not any(p.startswith(".") for p in relative.split("/")):
            found.append((path, relative))
    return found


def check(root: Path, progress: Progress, *, accept_damaged: bool) -> tuple[list[Track], list[str]]:
    """Find, probe and order the book's audio. Unreadable files fail the book unless `accept_damaged`."""
    files = audio_files(root)
    if not files:
        raise BookError("No audio files (MP3, M4A/M4B, FLAC, OGG/Opus, WMA) in the download.", code="no_audio")
    if len(files) > settings.AUDIOBOOK_MAX_FILES:
        raise BookError(f"{len(files)} audio files: more than AUDIOBOOK_MAX_FILES "
                        f"({settings.AUDIOBOOK_MAX_FILES}).", code="too_many_files")
    tracks, warnings = [], []
    with ThreadPoolExecutor(max_workers=settings.AUDIOBOOK_PROBE_WORKERS) as pool:
        probes = pool.map(_probe, [path for path, _ in files])
        for n, ((path, relative), probed) in enumerate(zip(files, probes, strict=True), 1):
            progress("checking", n - 1, len(files))
            if isinstance(probed, MediaError):
                if not accept_damaged:
                    raise BookError(f"{relative}: {probed.message}", code="bad_file")
                warnings.append(f"left out {relative}: {probed.message}")
            else:
                tracks.append(Track(path, relative, probed))
    progress("checking", len(files), len(files))
    if not tracks:
        raise BookError("None of the audio files can be read.", code="no_audio")
    return order(tracks), warnings


def _probe(path: Path) -> Probe | MediaError:
    try:
        return media.probe(path)
    except MediaError as exc:
        return exc


def output_format(tracks: list[Track]) -> tuple[int, int, int]:
    """(sample rate, channels, bitrate): the highest source rate (an AAC rate), mono only if every source
    is, min(source bitrate, cap) snapped down to a standard step; never upsampled in bitrate."""
    rate = max(t.probe.sample_rate for t in tracks)
    rate = min((r for r in AAC_RATES if r >= rate), default=48000)
    channels = 1 if all(t.probe.channels == 1 for t in tracks) else 2
    source = max(t.probe.bit_rate for t in tracks) or settings.AUDIOBOOK_MAX_BITRATE
    cap = min(source, settings.AUDIOBOOK_MAX_BITRATE)
    bitrate = max((b for b in BITRATES if b <= cap), default=BITRATES[0])
    return rate, channels, bitrate


def is_ready_m4b(tracks: list[Track]) -> bool:
    """One AAC file in an MP4 container: copied, not re-encoded."""
    return len(tracks) == 1 and tracks[0].probe.codec == "aac" and "mp4" in tracks[0].probe.format_name.split(",")


def chapter_titles(tracks: list[Track], book_title: str) -> list[str]:
    """Audiobookshelf's rule: the files' title tags when every file has one, all differ and none is the book's
    title; otherwise the file names without extension."""
    titles = [t.probe.tag("title").strip() for t in tracks]
    if all(titles) and len(set(titles)) == len(titles) and book_title not in titles:
        return titles
    return [Path(t.relative).stem for t in tracks]


def chapters_for(tracks: list[Track], rate: int, book_title: str) -> list[Chapter]:
    """One chapter per file, or a file's own chapters (shifted to where the file starts) when it has some."""
    chapters, start = [], 0
    for track, title in zip(tracks, chapter_titles(tracks, book_title), strict=True):
        end = start + track.samples
        own = [c for c in track.probe.chapters if c[1] > c[0]]
        if len(own) > 1:
            for c_start, c_end, c_title in own:
                s = min(end, start + round(c_start * rate))
                e = min(end, start + round(c_end * rate))
                if e > s:
                    chapters.append(Chapter(s, e, c_title or title))
        elif track.samples:
            chapters.append(Chapter(start, end, title))
        start = end
    if chapters:
        chapters[-1].end = start
    return chapters


def ffmetadata(title: str, chapters: list[Chapter], rate: int) -> str:
    lines = [";FFMETADATA1", f"title={media.escape_ffmetadata(title)}"]
    for c in chapters:
        lines += ["", "[CHAPTER]", f"TIMEBASE=1/{rate}", f"START={c.start}", f"END={c.end}",
                  f"title={media.escape_ffmetadata(c.title)}"]
    return "\n".join(lines) + "\n"


def output_limit(tracks: list[Track], bitrate: int) -> int:
    """The most bytes the output may take (RLIMIT_FSIZE of ffmpeg): twice the estimate plus headroom, or
    the operator's AUDIOBOOK_OUTPUT_LIMIT_BYTES."""
    if settings.AUDIOBOOK_OUTPUT_LIMIT_BYTES:
        return settings.AUDIOBOOK_OUTPUT_LIMIT_BYTES
    seconds = sum(max(t.probe.duration, 1.0) for t in tracks)
    return int(seconds * bitrate / 8 * 2) + 64 * 1024 * 1024


def merge(tracks: list[Track], work: Path, out: Path, *, title: str, progress: Progress, tick: Callable[[], None],
          accept_damaged: bool) -> Book:
    """Decode every track into one encoder, then remux the chapters in: `out` is the finished M4B."""
    rate, channels, bitrate = output_format(tracks)
    limit = output_limit(tracks, bitrate)
    audio = work / "audio.m4a"
    warnings: list[str] = []
    encoder = media.Encoder(audio, rate=rate, channels=channels, bitrate=bitrate, max_bytes=limit)
    ahead = media.start_decode(tracks[0].path, rate=rate, channels=channels)
    try:
        for n, track in enumerate(tracks):
            progress("merging", n, len(tracks))
            current = ahead
            if n + 1 < len(tracks):  # one decoder ahead: its start-up overlaps this file's decoding
                ahead = media.start_decode(tracks[n + 1].path, rate=rate, channels=channels)
            decoded = media.finish_decode(current, channels=channels, sink=encoder.write, tick=tick)
            track.samples = decoded.samples
            problem = _damage(track, decoded, rate)
            if problem:
                if not accept_damaged:
                    raise BookError(f"{track.relative}: {problem}", code="damaged_file")
                track.damaged = problem
                warnings.append(f"{track.relative}: {problem}")
        encoder.close()
    except BaseException:
        encoder.kill()
        if ahead.poll() is None:
            ahead.kill()
        ahead.wait()
        raise
    progress("merging", len(tracks), len(tracks))
    total = sum(t.samples for t in tracks)
    if not total:
        raise BookError("No audio decoded from any file.", code="no_audio")
    chapters = chapters_for(tracks, rate, title)
    metadata = work / "chapters.txt"
    metadata.write_text(ffmetadata(title, chapters, rate), encoding="utf-8")
    media.remux(audio, metadata, out, rate=rate, max_bytes=limit)
    audio.unlink()
    written = media.stream_samples(out)
    if written != total:
        raise BookError(f"The merged file holds {written} samples, not the {total} decoded.", code="merge_mismatch")
    return Book(out, rate, total, chapters, tracks, warnings=warnings)


def _damage(track: Track, decoded: media.Decoded, rate: int) -> str:
    if decoded.samples == 0:
        return f"no audio decoded ({decoded.warnings or 'empty'})"
    if decoded.returncode != 0:
        return f"the decoder failed part way ({decoded.warnings or f'exit {decoded.returncode}'})"
    claimed = track.probe.duration
    if claimed > 0 and decoded.samples / rate < claimed * TRUNCATED_RATIO - TRUNCATED_SLACK:
        return f"truncated: {decoded.samples / rate:.1f} s decode of the {claimed:.1f} s its header claims"
    return ""


def copy_ready(track: Track, out: Path, *, tick: Callable[[], None]) -> Book:
    """A single AAC M4B: validated by decoding (a truncated file fails), then copied as it is."""
    rate, channels = track.probe.sample_rate, track.probe.channels
    decoded = media.decode(track.path, rate=rate, channels=channels, sink=lambda _: None, tick=tick)
    track.samples = decoded.samples
    if problem := _damage(track, decoded, rate):
        raise BookError(f"{track.relative}: {problem}", code="damaged_file")
    shutil.copyfile(track.path, out)  # a copy: tagging must never touch the seeding file (same inode if linked)
    samples = media.stream_samples(out)
    chapters = chapters_for([track], rate, "")
    for chapter in chapters:
        chapter.end = min(chapter.end, samples)
    return Book(out, rate, samples, chapters, [track], copied=True)
