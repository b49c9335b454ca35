"""One poll cycle of the servers backend: 3 real servers (transmission-daemon, rtorrent, qbittorrent-nox) with
500 torrents each, every torrent a Flotilla job. Prints the remote requests one cycle makes (it must be 3:
one listing per server, whatever the number of jobs) and the cycle's wall time.

    .venv/bin/python bench/servers_poll.py [--torrents 500] [--cycles 5]

The daemons run on 127.0.0.1 under a throwaway DATA_DIR (tests/servers/daemons.py starts them). Each gets
`--torrents` tiny distinct torrents (one 16 KiB file each), added stopped, so nothing downloads and the
state is the same every cycle; the jobs are paused, mirroring them. A cycle is `dispatch.sync_running()`,
exactly what the worker's poller runs every SYNC_INTERVAL: the per-server listing, matching each listed
torrent to its job by keyed hash, and the (here empty) writes. The first cycle also logs in / does the
session handshakes (printed apart); the figures are over the following `--cycles` cycles. Requests are
counted by the clients on the wire (HTTP response hooks, SCGI requests).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import environment, setup_django

KINDS = ("transmission", "rtorrent", "qbittorrent")


def make_torrents(directory: Path, count: int, tag: str) -> list[bytes]:
    from downloads.swarm.payload import make_payload, make_torrent

    torrents = []
    for n in range(count):
        root = directory / f"{tag}-{n}"
        make_payload(root, {f"{tag}-{n}.bin": 16 * 1024}, seed=f"{tag}-{n}")
        torrents.append(make_torrent(root / f"{tag}-{n}.bin", ["http://127.0.0.1:9/announce"], 16 * 1024))
    return torrents


def requests_made() -> dict[int, int]:
    from servers import clients

    return {server_id: entry[1].calls for server_id, entry in clients._cache.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--torrents", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    with environment(SERVERS_TIMEOUT="60"):
        setup_django()
        from tests.servers import daemons

        root = Path(tempfile.mkdtemp(prefix="flotilla-bench-daemons-"))
        running = []
        try:
            for kind in KINDS:
                started = time.perf_counter()
                running.append(daemons.STARTERS[kind](root / kind))
                print(f"{kind:>13}: ready in {time.perf_counter() - started:.2f} s", flush=True)
            run(running, root, args.torrents, args.cycles)
        finally:
            for daemon in running:
                daemon.stop()


def run(running, root: Path, count: int, cycles: int) -> None:
    from accounts.models import User
    from config.crypto import keyed_hash
    from downloads import dispatch
    from downloads.models import Job, Status
    from downloads.swarm.payload import torrent_meta
    from servers import clients
    from servers.models import TorrentServer
    from servers.services import remote_id

    user = User.objects.create_user("poller@example.com", "correct horse battery staple", email_verified=True,
                                    accepted_policy_version=1)
    servers = []
    for daemon in running:
        server = TorrentServer.objects.create(owner=user, name=daemon.kind, **daemon.server_fields())
        servers.append(server)
        started = time.perf_counter()
        torrents = make_torrents(root / "payloads", count, daemon.kind)
        made = time.perf_counter() - started
        started = time.perf_counter()
        jobs = []
        with clients.connect(server) as client:
            for data in torrents:
                client.add_torrent(data, paused=True)
                meta = torrent_meta(data)
                jobs.append(Job(user=user, backend=server.backend_name, status=Status.PAUSED, name=meta.name,
                                info_hash=meta.info_hash, info_hash_hmac=keyed_hash(meta.info_hash),
                                size_bytes=meta.size, remote_id=remote_id(server, meta.info_hash)))
            listed = len(client.list())
        Job.objects.bulk_create(jobs, batch_size=500)
        print(f"{daemon.kind:>13}: {count} torrents made in {made:.1f} s, added (stopped) in "
              f"{time.perf_counter() - started:.1f} s; it lists {listed}", flush=True)

    before = requests_made()
    started = time.perf_counter()
    dispatch.sync_running()
    first = time.perf_counter() - started
    after = requests_made()
    print(f"first cycle (clients warm from adding): {sum(after.values()) - sum(before.values())} requests, "
          f"{first * 1000:.0f} ms")

    per_cycle, times, per_server = [], [], {s.pk: [] for s in servers}
    for _ in range(cycles):
        before = requests_made()
        started = time.perf_counter()
        groups = dispatch.sync_running()
        times.append(time.perf_counter() - started)
        after = requests_made()
        per_cycle.append(sum(after.values()) - sum(before.values()))
        for s in servers:
            per_server[s.pk].append(after[s.pk] - before[s.pk])
        assert groups == len(servers)
    unchanged = Job.objects.filter(status=Status.PAUSED).count()
    print(f"jobs: {Job.objects.count()} ({unchanged} still paused, as their torrents)")
    print(f"requests per cycle: {per_cycle}  (per server: "
          + ", ".join(f"{s.name} {per_server[s.pk]}" for s in servers) + ")")
    print(f"cycle time over {cycles} cycles: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    for server in servers:  # each listing alone, for the share of the cycle spent waiting on the servers
        with clients.connect(server) as client:
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                client.list()
                samples.append(time.perf_counter() - started)
        print(f"  listing of {server.name} alone: median {statistics.median(samples) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
