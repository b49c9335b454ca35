"""Audiobook fixtures made with the real ffmpeg at test time (tones, so lengths are known), and read-backs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]


def tone(path: Path, seconds: float, *, rate: int = 44100, channels: int = 1, freq: int = 440,
         codec: str = "libmp3lame", bitrate: str = "64k", tags: dict | None = None, fmt: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = [a for k, v in (tags or {}).items() for a in ("-metadata", f"{k}={v}")]
    layout = "mono" if channels == 1 else "stereo"
    source = f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}"
    codec_args = ["-c:a", codec] + (["-b:a", bitrate] if codec not in ("flac", "pcm_s16le") else [])
    out_fmt = ["-f", fmt] if fmt else []
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", source, "-af", f"aformat=channel_layouts={layout}",
                    *codec_args, *meta, *out_fmt, f"file:{path}"], check=True)
    return path


def segments(folder: Path, count: int, seconds: float, *, rate: int = 22050) -> list[Path]:
    """`count` MP3 files of `seconds` each from ONE ffmpeg run (the segment muxer), named part001.mp3…"""
    folder.mkdir(parents=True, exist_ok=True)
    total = count * seconds
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", f"sine=frequency=500:sample_rate={rate}:duration={total}",
                    "-c:a", "libmp3lame", "-b:a", "32k", "-f", "segment", "-segment_time", str(seconds),
                    str(folder / "part%03d.mp3")], check=True)
    return sorted(folder.glob("part*.mp3"))


def decoded_samples(path: Path, *, rate: int, channels: int) -> int:
    out = subprocess.run([*FFMPEG, "-i", f"file:{path}", "-map", "0:a:0", "-f", "s16le", "-ar", str(rate),
                          "-ac", str(channels), "pipe:1"], capture_output=True, check=True).stdout
    return len(out) // (2 * channels)


def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, f"file:{path}"], capture_output=True,
                         check=True).stdout
    return json.loads(out)


def chapters(path: Path) -> list[tuple[float, float, str]]:
    data = ffprobe_json(path, "-show_chapters")["chapters"]
    return [(float(c["start_time"]), float(c["end_time"]), c.get("tags", {}).get("title", "")) for c in data]


def audio_stream(path: Path) -> dict:
    return ffprobe_json(path, "-show_streams", "-select_streams", "a:0")["streams"][0]


def tree_digest(root: Path) -> dict[str, tuple[str, int, int]]:
    """sha256, inode and link count of every file under root: what the seeding client sees."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_ino,
                                                st.st_nlink)
    return out


def jpeg(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate=1", "-frames:v", "1",
                    f"file:{path}"], check=True)
    return path
