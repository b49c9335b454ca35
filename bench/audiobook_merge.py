"""Audiobook merge: speed in x realtime, peak memory of the ffmpeg processes, chapter error in samples.

Generates books with ffmpeg (tones, so every length is known): `hour` — 20 MP3 files making 1 hour
(44.1 kHz mono, 64 kb/s, a typical audiobook rip) — and `tiny` — 300 MP3 files of 0.1 s (22.05 kHz, the
per-file overhead). Each book is merged by `audiobooks.merge` (check, then decode every file into one AAC
encoder, then the chapter remux) in a child process, which reports its wall time, and the memory of the
ffmpeg/ffprobe processes it runs read from /proc every 10 ms: the largest peak (VmHWM) of any one and the
largest sum of their resident sets at one moment. (`getrusage(RUSAGE_CHILDREN).ru_maxrss` is useless here:
Linux carries the forking Python's resident set into each child's figure, so it reports Django's ~100 MiB.)
Chapter error: every chapter start read back with ffprobe (in samples, at the book's rate) against the
running sum of each input's decoded length measured on its own (ffmpeg to PCM, counted). Prints the load
average before and after: on a shared machine the figures move with it.

    .venv/bin/python bench/audiobook_merge.py [--books hour,tiny] [--rounds 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]
BOOKS = {  # name: (files, seconds each, sample rate, bitrate)
    "hour": (20, 180.0, 44100, "64k"),
    "tiny": (300, 0.1, 22050, "32k"),
}


def make_book(folder: Path, files: int, seconds: float, rate: int, bitrate: str) -> list[Path]:
    """`files` MP3s from one ffmpeg run (the segment muxer), a tone whose pitch steps so files differ."""
    if not folder.is_dir() or len(list(folder.glob("part*.mp3"))) < files:  # the muxer may cut one more
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        source = f"sine=frequency=300:beep_factor=2:sample_rate={rate}:duration={files * seconds}"
        subprocess.run([*FFMPEG, "-f", "lavfi", "-i", source, "-ac", "1", "-c:a", "libmp3lame", "-b:a", bitrate,
                        "-f", "segment", "-segment_time", str(seconds), str(folder / "part%03d.mp3")], check=True)
    parts = sorted(folder.glob("part*.mp3"))
    for extra in parts[files:]:  # the muxer may leave a last sliver with no whole frame: not part of the book
        extra.unlink()
    return parts[:files]


def decoded_samples(path: Path, rate: int) -> int:
    out = subprocess.run([*FFMPEG, "-i", f"file:{path}", "-map", "0:a:0", "-f", "s16le", "-ar", str(rate), "-ac", "1",
                          "pipe:1"], capture_output=True, check=True).stdout
    return len(out) // 2


def chapter_starts(m4b: Path) -> tuple[list[int], int, int]:
    """Chapter starts in samples, the stream's length in samples and its rate, as ffprobe reads the file."""
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_chapters", "-show_streams",
                          "-select_streams", "a:0", f"file:{m4b}"], capture_output=True, check=True).stdout
    data = json.loads(out)
    stream = data["streams"][0]
    rate = int(stream["sample_rate"])
    num, den = (int(x) for x in stream["time_base"].split("/"))
    starts = []
    for chapter in data["chapters"]:
        c_num, c_den = (int(x) for x in chapter["time_base"].split("/"))
        starts.append(round(int(chapter["start"]) * c_num * rate / c_den))
    return starts, round(int(stream["duration_ts"]) * num * rate / den), rate


class ChildMemory:
    """Samples this process's children (/proc/<pid>/task/<pid>/children) every 10 ms from a thread."""

    def __init__(self) -> None:
        self.peak_one_kib = self.peak_sum_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(0.01):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            total = 0
            for child in children:
                status = _status(child)
                total += status.get("VmRSS", 0)
                self.peak_one_kib = max(self.peak_one_kib, status.get("VmHWM", 0))
            self.peak_sum_kib = max(self.peak_sum_kib, total)


def _status(pid: str) -> dict[str, int]:
    """VmRSS/VmHWM of an ffmpeg/ffprobe child; nothing for a child not yet exec'd (still a copy of Python)."""
    try:
        if not Path(f"/proc/{pid}/comm").read_text().startswith(("ffmpeg", "ffprobe")):
            return {}
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in ("VmRSS", "VmHWM")}


def merge_child(source: Path, work: Path) -> None:
    """In a fresh process (so RUSAGE_CHILDREN covers only this merge's ffmpeg runs): merge, print JSON."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from audiobooks import merge

    with ChildMemory() as memory:
        started = time.perf_counter()
        tracks, _ = merge.check(source, lambda *a: None, accept_damaged=False)
        checked = time.perf_counter()
        out = work / "book.m4b"
        book = merge.merge(tracks, work, out, title="Bench", progress=lambda *a: None, tick=lambda: None,
                           accept_damaged=False)
        done = time.perf_counter()
    print(json.dumps({
        "check_s": checked - started, "merge_s": done - checked, "total_s": done - started,
        "samples": book.samples, "rate": book.rate, "chapters": len(book.chapters), "out": str(out),
        "order": [t.path.name for t in tracks],
        "ffmpeg_peak_one_kib": memory.peak_one_kib, "ffmpeg_peak_sum_kib": memory.peak_sum_kib,
        "self_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "cpu_children_s": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime,
    }))


def child_env(data_dir: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = dict(os.environ, DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING",
               AUDIOBOOK_LIBRARY_ROOT=str(data_dir / "library"), SECRET_KEY=secrets.token_urlsafe(50),
               FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(), LOOKUP_HASH_KEY=secrets.token_urlsafe(32))
    return env


def run(name: str, base: Path, rounds: int) -> None:
    files, seconds, rate, bitrate = BOOKS[name]
    t0 = time.perf_counter()
    parts = make_book(base / name, files, seconds, rate, bitrate)
    print(f"\n## {name}: {len(parts)} MP3 files, {files * seconds:.0f} s of audio at {rate} Hz mono {bitrate} "
          f"(fixtures {time.perf_counter() - t0:.1f} s)")
    expected, running = [], 0
    for part in parts:
        expected.append(running)
        running += decoded_samples(part, rate)
    for n in range(1, rounds + 1):
        work = base / f"work-{name}-{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        load = os.getloadavg()[0]
        result = subprocess.run([sys.executable, __file__, "--child", str(base / name), str(work)],
                                capture_output=True, text=True, env=child_env(base / "data"), check=True)
        r = json.loads(result.stdout.strip().splitlines()[-1])
        starts, length, book_rate = chapter_starts(Path(r["out"]))
        assert book_rate == rate, (book_rate, rate)
        errors = [abs(a - b) for a, b in zip(starts, expected, strict=True)]
        audio = r["samples"] / r["rate"]
        print(f"round {n}: {audio:.1f} s audio in {r['total_s']:.2f} s = {audio / r['total_s']:.0f}x realtime "
              f"(check {r['check_s']:.2f} s, merge {r['merge_s']:.2f} s = {audio / r['merge_s']:.0f}x; ffmpeg CPU "
              f"{r['cpu_children_s']:.1f} s)  peak RSS: one ffmpeg {r['ffmpeg_peak_one_kib'] / 1024:.1f} MiB, all at "
              f"once {r['ffmpeg_peak_sum_kib'] / 1024:.1f} MiB, python {r['self_maxrss_kib'] / 1024:.1f} MiB  "
              f"chapters {r['chapters']}/{len(parts)}, "
              f"chapter start error max {max(errors)} samples, length {length} vs decoded {running} "
              f"({length - running:+d})  load {load:.2f} -> {os.getloadavg()[0]:.2f}")
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--books", default="hour,tiny")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the generated fixtures here (reused next time)")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return merge_child(*args.child)
    print(f"# {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{subprocess.run(['ffmpeg', '-version'], capture_output=True, text=True).stdout.split(chr(10))[0]}")
    base = args.keep or Path(tempfile.mkdtemp(prefix="flotilla-bench-audiobook-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.books.split(","):
            run(name, base, args.rounds)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return None


if __name__ == "__main__":
    main()
