"""Sending a completed file: built-in (daphne), offloaded (nginx + X-Accel-Redirect), and nginx alone, same run.

One random file (~200 MiB, in the page cache before any clock) is a completed job's only file. curl fetches it
whole, with the bench's API key, from:
- `nginx`: nginx serving the file directly from the job's folder (the reference; `sendfile on`);
- `daphne`: `GET /api/v1/stream/<job>/<file>` on a daphne with STREAM_OFFLOAD off (streaming/files.py reads
  256 KiB chunks in a worker thread);
- `daphne behind nginx`: the same daphne through nginx as a proxy (docker-compose.yml's front door, offload off);
- `offload`: the stream URL through nginx to a second daphne with STREAM_OFFLOAD=x-accel-redirect: daphne
  authorises and answers X-Accel-Redirect, nginx sends the file from its internal /_protected/ location.
Rounds rotate the order. Printed per round and as medians: MiB/s, the ratio to nginx's MiB/s, curl's time to
first byte, and CPU seconds per GiB of the serving processes (utime+stime from /proc, before and after).
Options: --size-mib (200), --rounds (3).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import environment, load_note, setup_django
from bench.stream_common import (
    GIB,
    MIB,
    auth,
    completed_file,
    cpu_of,
    daphne,
    direct_location,
    make_user,
    median,
    nginx,
    proxy_location,
)


@dataclass
class Path_:
    name: str
    url: str
    pids: dict[str, int]  # serving processes whose CPU counts


@dataclass
class Fetch:
    seconds: float
    ttfb: float
    size: int
    cpu: dict[str, float]


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            fh.write(block)
            left -= len(block)
    with path.open("rb") as fh:  # into the page cache: every contender reads from memory
        while fh.read(8 * MIB):
            pass


def curl(url: str, *extra: str) -> tuple[int, int, float, float]:
    """Status, bytes, time to first byte, total time — curl's own clocks."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-H", f"Authorization: {auth()['Authorization']}", *extra,
         "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}", url],
        check=True, capture_output=True, text=True, timeout=600).stdout.split()
    return int(out[0]), int(out[1]), float(out[2]), float(out[3])


def fetch(path: Path_, expected: int) -> Fetch:
    before = {name: cpu_of(pid) for name, pid in path.pids.items()}
    status, size, ttfb, total = curl(path.url)
    cpu = {name: cpu_of(pid) - before[name] for name, pid in path.pids.items()}
    if status != 200 or size != expected:
        raise RuntimeError(f"{path.name}: HTTP {status}, {size} of {expected} bytes")
    return Fetch(total, ttfb, size, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    with environment() as env, ExitStack() as stack:
        setup_django()
        from django.conf import settings

        work = Path(env["DATA_DIR"]) / "bench"
        work.mkdir()
        source = work / "film.bin"
        write_random(source, size)
        user = make_user()
        jobfile = completed_file(user, source, "film.bin", "video/mp4")
        stream_path = f"/api/v1/stream/{jobfile.job_id}/{jobfile.pk}"

        builtin = stack.enter_context(daphne(env, "daphne-builtin"))
        offloaded = stack.enter_context(daphne(env, "daphne-offload", STREAM_OFFLOAD="x-accel-redirect"))
        proxy = stack.enter_context(nginx(work, [
            direct_location("/direct/", jobfile.job.data_dir),
            proxy_location("/builtin/", builtin.url + "/"),
            proxy_location("/", offloaded.url, downloads=Path(settings.DOWNLOADS_DIR)),
        ]))
        paths = [
            Path_("nginx", f"{proxy.url}/direct/film.bin", {"nginx": proxy.pid}),
            Path_("daphne", builtin.url + stream_path, {"daphne": builtin.pid}),
            Path_("daphne behind nginx", f"{proxy.url}/builtin{stream_path}", {"nginx": proxy.pid,
                                                                               "daphne": builtin.pid}),
            Path_("offload (X-Accel)", proxy.url + stream_path, {"nginx": proxy.pid, "daphne": offloaded.pid}),
        ]
        print(f"# {args.size_mib} MiB random file in the page cache, {args.rounds} rounds, order rotated; "
              f"client curl {curl_version()}; nginx master_process off (one process)")
        print(f"# {load_note()}", flush=True)
        for path in paths:  # warm-up: imports, first queries, nginx's open file
            curl(path.url, "-r", "0-1023")
        results: dict[str, list[Fetch]] = {p.name: [] for p in paths}
        for n in range(args.rounds):
            order = paths[n % len(paths):] + paths[:n % len(paths)]
            line = []
            for path in order:
                got = fetch(path, size)
                results[path.name].append(got)
                line.append(f"{path.name} {size / MIB / got.seconds:.0f} MiB/s")
            print(f"round {n + 1}: " + ", ".join(line), flush=True)
        report(results, paths, size)
        print(f"# {load_note()}")


def report(results: dict[str, list[Fetch]], paths: list[Path_], size: int) -> None:
    ref = median([size / MIB / r.seconds for r in results["nginx"]])
    print("\nmedians (ratio = MiB/s / nginx's MiB/s, same run; CPU of the serving processes per GiB sent):")
    print(f"{'path':<22}{'MiB/s':>8}{'ratio':>7}{'TTFB ms':>9}{'CPU s/GiB':>11}  split")
    for path in paths:
        rows = results[path.name]
        rate = median([size / MIB / r.seconds for r in rows])
        ttfb = median([r.ttfb * 1000 for r in rows])
        per_gib = {name: median([r.cpu[name] for r in rows]) / (size / GIB) for name in path.pids}
        split = ", ".join(f"{name} {value:.2f}" for name, value in per_gib.items())
        print(f"{path.name:<22}{rate:>8.0f}{rate / ref:>7.2f}{ttfb:>9.1f}{sum(per_gib.values()):>11.2f}  {split}")


def curl_version() -> str:
    return subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]


if __name__ == "__main__":
    main()
