"""Deterministic test videos made with ffmpeg (the Debian package) at test time, cached per session.

H.264 + AAC in MP4, with the `moov` index at the front (`faststart`) or, as most downloads have it, at the
end. Single-threaded encoding with bit-exact flags: the same arguments give the same bytes on every run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# name → (width, height, seconds, video bitrate): the sizes (~1 MB, ~5 MB, ~20 MB).
PRESETS = {
    "720p10": (1280, 720, 10, "800k"),
    "1080p30": (1920, 1080, 30, "1300k"),
    "4k60": (3840, 2160, 60, "2600k"),
}


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:  # a missing binary fails the test (it is in the Makefile's TEST_DEBS), never skips it
        raise RuntimeError("ffmpeg is not installed: `make debs-test` (Debian package ffmpeg)")
    return path


def make_video(directory: Path, preset: str, *, faststart: bool = True) -> Path:
    width, height, seconds, bitrate = PRESETS[preset]
    target = Path(directory) / f"{preset}{'-faststart' if faststart else ''}.mp4"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.mp4")
    cmd = [
        ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-g", "50", "-pix_fmt", "yuv420p",
        "-x264-params", "threads=1", "-threads", "1",
        "-c:a", "aac", "-b:a", "96k",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact",
        *(["-movflags", "+faststart"] if faststart else []),
        str(tmp),
    ]
    subprocess.run(cmd, check=True, timeout=600)
    tmp.rename(target)
    return target
