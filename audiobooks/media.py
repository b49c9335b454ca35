"""The one place that runs ffmpeg and ffprobe on torrent content.

Every call: absolute paths behind a `file:` prefix (a name like `concat:x.mp3` is then a file, not a
protocol), `-nostdin`, `-protocol_whitelist file,pipe` and a demuxer whitelist (`-format_whitelist`): an
`.mp3` that is really an HLS playlist would otherwise make ffmpeg open the local files it names
(docs/research: ffmpeg opened another file; `-protocol_whitelist` alone did not stop it). Durations are
trusted only when decoded: ffprobe's header duration of a truncated MP3 is the untruncated one.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

# Demuxers audio may come through (ffmpeg's names; "mov,mp4,m4a,3gp,3g2,mj2" is one demuxer).
AUDIO_FORMATS = "mp3,mov,mp4,m4a,3gp,3g2,mj2,flac,ogg,wav,aac,asf,matroska,webm"
IMAGE_FORMATS = "image2,jpeg_pipe,png_pipe,webp_pipe,bmp_pipe"
PROTOCOLS = "file,pipe"
PCM_BYTES = 2  # s16le
READ_CHUNK = 256 * 1024


class MediaError(Exception):
    """ffmpeg/ffprobe refused or failed; `code` says how (`disk_full` when the output could not be written)."""

    def __init__(self, message: str, *, code: str = "media_failed"):
        super().__init__(message)
        self.message, self.code = message, code


def ffmpeg() -> str:
    return settings.AUDIOBOOK_FFMPEG


def ffprobe() -> str:
    return settings.AUDIOBOOK_FFPROBE


def src(path: Path) -> str:
    """An input argument: absolute, as a file (never a protocol or a relative name)."""
    if not path.is_absolute():
        raise ValueError(f"not absolute: {path}")
    return f"file:{path}"


def _input(path: Path, formats: str) -> list[str]:
    return ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", formats, "-i", src(path)]


def _tail(stderr: bytes | str, limit: int = 300) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    return text.strip()[-limit:]


def _limit_output(max_bytes: int | None) -> Callable[[], None] | None:
    """A child that may write at most `max_bytes` per file (RLIMIT_FSIZE): a runaway or a full disk ends the
    write with EFBIG/SIGXFSZ instead of filling the library's filesystem."""
    if not max_bytes:
        return None

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def _failed(what: str, returncode: int, stderr: bytes | str) -> MediaError:
    text = _tail(stderr)
    if returncode == -signal.SIGXFSZ or "No space left" in text or "File too large" in text:
        return MediaError(f"{what}: the disk is full (or the output passed its size limit).", code="disk_full")
    return MediaError(f"{what} failed (exit {returncode}): {text or 'no message'}")


# --- probing -----------------------------------------------------------------------------------------


@dataclass
class Probe:
    path: Path
    format_name: str
    duration: float  # the container's claim; trust only decoded counts
    bit_rate: int
    codec: str
    sample_rate: int
    channels: int
    tags: dict[str, str] = field(default_factory=dict)
    chapters: list[tuple[float, float, str]] = field(default_factory=list)
    has_cover: bool = False

    def tag(self, *names: str) -> str:
        for name in names:
            if self.tags.get(name):
                return self.tags[name]
        return ""


def probe(path: Path) -> Probe:
    """The file's first audio stream, tags and chapters; MediaError when ffprobe cannot read it as audio."""
    result = subprocess.run(
        [ffprobe(), "-hide_banner", "-v", "error", *_input(path, AUDIO_FORMATS), "-of", "json",
         "-show_format", "-show_streams", "-show_chapters"],
        capture_output=True, timeout=settings.AUDIOBOOK_PROBE_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise MediaError(f"not readable audio: {_tail(result.stderr) or 'ffprobe failed'}", code="unreadable")
    data = json.loads(result.stdout or b"{}")
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise MediaError("no audio stream", code="unreadable")
    tags = {k.lower(): str(v) for k, v in (fmt.get("tags") or {}).items()}
    for k, v in (audio.get("tags") or {}).items():
        tags.setdefault(k.lower(), str(v))
    chapters = [(float(c["start_time"]), float(c["end_time"]), (c.get("tags") or {}).get("title", ""))
                for c in data.get("chapters") or []]
    return Probe(
        path=path, format_name=fmt.get("format_name", ""), duration=_float(fmt.get("duration")),
        bit_rate=int(_float(audio.get("bit_rate") or fmt.get("bit_rate"))), codec=audio.get("codec_name", ""),
        sample_rate=int(_float(audio.get("sample_rate"))), channels=int(audio.get("channels") or 0),
        tags=tags, chapters=chapters,
        has_cover=any(s.get("disposition", {}).get("attached_pic") for s in streams),
    )


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def stream_samples(path: Path) -> int:
    """The first audio stream's length in samples as the container's edit list states it (what a player
    plays: priming and padding trimmed). For our own output, checked against the samples we fed in."""
    result = subprocess.run(
        [ffprobe(), "-hide_banner", "-v", "error", *_input(path, AUDIO_FORMATS), "-select_streams", "a:0",
         "-show_entries", "stream=duration_ts,time_base,sample_rate", "-of", "json"],
        capture_output=True, timeout=settings.AUDIOBOOK_PROBE_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise MediaError(f"cannot read the merged file: {_tail(result.stderr)}")
    [stream] = json.loads(result.stdout)["streams"]
    num, den = (int(x) for x in stream["time_base"].split("/"))
    return round(int(stream["duration_ts"]) * num * int(stream["sample_rate"]) / den)


# --- decoding and encoding ---------------------------------------------------------------------------


@dataclass
class Decoded:
    samples: int
    returncode: int
    warnings: str


def start_decode(path: Path, *, rate: int, channels: int) -> subprocess.Popen:
    """A decoder of the first audio stream to s16le PCM at `rate`/`channels` on its stdout (started ahead of
    its turn: process start-up then overlaps the previous file's decoding)."""
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", *_input(path, AUDIO_FORMATS), "-map", "0:a:0",
           "-vn", "-sn", "-dn", "-f", "s16le", "-ar", str(rate), "-ac", str(channels), "pipe:1"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_decode(proc: subprocess.Popen, *, channels: int, sink: Callable[[bytes], None],
                  tick: Callable[[], None] = lambda: None) -> Decoded:
    """Read a started decoder into `sink`, counting the samples. A ragged tail (a partial sample frame) is
    padded with silence so the next file starts on a frame."""
    frame = PCM_BYTES * channels
    total = 0
    with proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            for chunk in iter(lambda: proc.stdout.read(READ_CHUNK), b""):
                sink(chunk)
                total += len(chunk)
                tick()
        except BaseException:
            proc.kill()
            raise
        stderr = proc.stderr.read()
        proc.wait()
    if total % frame:
        pad = frame - total % frame
        sink(b"\x00" * pad)
        total += pad
    return Decoded(samples=total // frame, returncode=proc.returncode, warnings=_tail(stderr))


def decode(path: Path, *, rate: int, channels: int, sink: Callable[[bytes], None],
           tick: Callable[[], None] = lambda: None) -> Decoded:
    return finish_decode(start_decode(path, rate=rate, channels=channels), channels=channels, sink=sink,
                         tick=tick)


class Encoder:
    """One AAC encoder fed PCM on stdin for a whole book (so AAC priming happens once, not per file)."""

    def __init__(self, out: Path, *, rate: int, channels: int, bitrate: int, max_bytes: int | None) -> None:
        self.out = out
        cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(rate),
               "-ac", str(channels), "-i", "pipe:0", "-c:a", "aac", "-b:a", str(bitrate),
               "-movie_timescale", str(rate), "-f", "mp4", str(out)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_limit_output(max_bytes))

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError:
            raise self._failure() from None

    def close(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        if self.proc.wait(timeout=settings.AUDIOBOOK_PROBE_TIMEOUT) != 0:
            raise self._failure()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def _failure(self) -> MediaError:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stderr is not None
        return _failed("encoding", self.proc.returncode, self.proc.stderr.read())


def remux(audio: Path, metadata: Path, out: Path, *, rate: int, max_bytes: int | None) -> None:
    """Audio stream copied, chapters and title from the ffmetadata file, moov first.

    The movie timescale is the sample rate: with mov's default of 1000 the edit list (the playable length)
    and the chapter track are rounded to milliseconds; at the sample rate both are exact to the sample."""
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *_input(audio, AUDIO_FORMATS),
           "-f", "ffmetadata", "-protocol_whitelist", PROTOCOLS, "-i", src(metadata), "-map", "0:a",
           "-map_metadata", "1", "-map_chapters", "1", "-c", "copy", "-movie_timescale", str(rate),
           "-movflags", "+faststart", "-f", "mp4", str(out)]
    _run(cmd, "adding chapters", max_bytes=max_bytes)


def cover_jpeg(image: Path, out: Path, *, max_px: int, from_audio: bool = False) -> None:
    """A JPEG at most `max_px` on its longest side, from an image file or an audio file's attached picture
    (decoded by ffmpeg, never trusted as-is)."""
    formats = AUDIO_FORMATS if from_audio else IMAGE_FORMATS
    scale = f"scale='min({max_px},iw)':'min({max_px},ih)':force_original_aspect_ratio=decrease"
    pick = ["-map", "0:v:0"] if from_audio else []
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *_input(image, formats), *pick,
           "-frames:v", "1", "-vf", scale, "-q:v", "3", "-f", "image2", "-c:v", "mjpeg", str(out)]
    _run(cmd, "cover", max_bytes=settings.AUDIOBOOK_COVER_MAX_BYTES * 4)


def image_size(image: Path) -> tuple[int, int]:
    result = subprocess.run(
        [ffprobe(), "-hide_banner", "-v", "error", *_input(image, IMAGE_FORMATS), "-select_streams", "v:0",
         "-show_entries", "stream=width,height", "-of", "json"],
        capture_output=True, timeout=settings.AUDIOBOOK_PROBE_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    streams = json.loads(result.stdout or b"{}").get("streams") or [] if result.returncode == 0 else []
    if not streams:
        raise MediaError("not an image", code="unreadable")
    width, height = int(streams[0].get("width") or 0), int(streams[0].get("height") or 0)
    if not width or not height:  # ffprobe's answer for a header past its own size limit (a 30000² PNG)
        raise MediaError("the image's size is unreadable", code="unreadable")
    return width, height


def _run(cmd: list[str], what: str, *, max_bytes: int | None) -> None:
    result = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False,
                            preexec_fn=_limit_output(max_bytes))
    if result.returncode != 0:
        raise _failed(what, result.returncode, result.stderr)


def escape_ffmetadata(value: str) -> str:
    """ffmetadata values escape `=`, `;`, `#`, `\\` and newlines with a backslash."""
    out = []
    for char in value:
        if char in "=;#\\\n":
            out.append("\\")
        out.append(char)
    return "".join(out)


def walk_files(root: Path) -> Iterator[Path]:
    """Regular files under `root`, never following symlinks (a torrent's symlink could point anywhere)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path
