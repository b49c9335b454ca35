"""Loopback swarm throughput: a plain libtorrent session downloads a payload from downloads.swarm's Seeder.

Prints, per run, the time from adding the torrent to having every piece verified and flushed to disk
(tracker discovery included),
MiB/s, and the sha256 check; then the median. Options: --size-mib (64), --files (1), --runs (3),
--magnet (add by magnet instead of .torrent), --piece-kib (libtorrent's choice by default), --tcp (the
downloader dials over TCP only; by default it uses uTP first, as libtorrent does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libtorrent as lt

from downloads.swarm import Swarm, sha256_file
from downloads.swarm.seeder import quiesce_session

MIB = 1 << 20
LEECHER = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
           "enable_natpmp": False, "alert_mask": lt.alert_category.storage}


def one_run(directory: Path, size: int, files: int, *, magnet: bool, piece_size: int | None, tcp: bool) -> float:
    with Swarm(directory, piece_size=piece_size) as swarm:
        spec = size if files == 1 else {f"f{i}.bin": size // files for i in range(files)}
        t0 = time.perf_counter()
        record = swarm.publish("payload", spec)
        print(f"  payload + .torrent + seeding: {time.perf_counter() - t0:.2f} s", end="")
        session = lt.session({**LEECHER, "enable_outgoing_utp": not tcp})
        if magnet:
            params = lt.parse_magnet_uri(record.magnet)
        else:
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(record.torrent_bytes)
        params.save_path = str(directory / "dl")
        t0 = time.perf_counter()
        handle = session.add_torrent(params)
        while not handle.status().is_seeding:
            time.sleep(0.01)
        # libtorrent 2.x can report seeding before its store buffer reached the files: flush, then check.
        handle.flush_cache()
        while not any(isinstance(a, lt.cache_flushed_alert) for a in session.pop_alerts()):
            session.wait_for_alert(100)
        elapsed = time.perf_counter() - t0
        ok = all(sha256_file(directory / "dl" / rel) == digest for rel, digest in record.files.items())
        print(f"; download {elapsed:.2f} s = {record.size / MIB / elapsed:.1f} MiB/s, sha256 {'ok' if ok else 'BAD'}")
        quiesce_session(session)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--magnet", action="store_true")
    parser.add_argument("--piece-kib", type=int)
    parser.add_argument("--tcp", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * MIB
    print(f"{args.size_mib} MiB in {args.files} file(s), by {'magnet' if args.magnet else '.torrent'}, "
          f"over {'TCP' if args.tcp else 'uTP (libtorrent default)'}, "
          f"libtorrent {lt.__version__}")
    times = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
            print(f"run {run + 1}:", end="")
            times.append(one_run(Path(tmp), size, args.files, magnet=args.magnet,
                                 piece_size=args.piece_kib * 1024 if args.piece_kib else None, tcp=args.tcp))
    median = statistics.median(times)
    print(f"median {median:.2f} s = {args.size_mib / median:.1f} MiB/s "
          f"(min {min(times):.2f} s, max {max(times):.2f} s)")


if __name__ == "__main__":
    main()
