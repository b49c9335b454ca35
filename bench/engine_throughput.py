"""Engine throughput against plain libtorrent, qbittorrent-nox and transmission-daemon, warm, same swarm.

One payload is seeded on 127.0.0.1 by downloads.swarm (tracker + libtorrent seeder). Four downloaders are
started and left idle before any clock runs:
- `engine`: the real `manage.py runengine`, fed a Flotilla job (claimed from the database, progress
  written through the spine every second, resume data saved);
- `plain`: a bare libtorrent session in its own process, commanded over a pipe (the reference);
- `qbittorrent`: qbittorrent-nox 4.5.2 (libtorrent-rasterbar 2.0), through its WebUI API;
- `transmission`: transmission-daemon 3.00, through its RPC.
The daemons are started by tests/servers/daemons.py (free ports, fresh config dirs).

Rounds rotate the order of the downloaders. Before each download: `sync` (no write-back left over from the
previous one) and the seeder drops and re-adds the torrent (a libtorrent seed never re-dials a peer it once
saw as a seed, which transmission needs: it never dials 127.x peers itself). The clock runs from "torrent
added" (the add request is sent; for the engine: the job is created) to "every piece verified and written":
plain: is_seeding then flush_cache → cache_flushed_alert; engine: its `seeding` event, emitted after the same
flush; qbittorrent: progress 1 in an upload state; transmission: percentDone 1, leftUntilDone 0. After the
clock, every file is checked against its sha256 and the download is deleted.

Printed per round and as medians: wall seconds, MiB/s, the throughput ratio against plain libtorrent of the
same run, and CPU seconds per GiB of the downloading process (/proc/<pid>/stat utime+stime, before the add
and at completion). Also, to tell start-up from transfer: when the seeder sent the first payload byte (its
upload counter, watched from a thread: the same probe for all) and the MiB/s from then on.
Options: --size-mib (256), --rounds (3), --files (1), --contenders.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PY, ROOT, cpu_seconds, environment, load_note, setup_django, wait_for

MIB = 1 << 20
GIB = 1 << 30
# TCP only, for every contender: on a loaded loopback uTP's timing swings a 64 MiB download from 0.8 s to 7 s
# (bench/README.md, swarm_throughput), which would drown the differences being measured.
LOOPBACK = {"allow_multiple_connections_per_ip": True, "min_reconnect_time": 1, "enable_outgoing_utp": False,
            "enable_incoming_utp": False}
ENGINE_NAME = "bench-engine"
ENGINE_ENV = {
    "ENGINE_LISTEN_INTERFACES": "127.0.0.1:0", "ENGINE_DHT": "false", "ENGINE_LSD": "false",
    "ENGINE_UPNP": "false", "ENGINE_NATPMP": "false", "ENGINE_LIBTORRENT_SETTINGS": json.dumps(LOOPBACK),
    "ENGINE_NAME": ENGINE_NAME,
}
CONTENDERS = ("plain", "engine", "qbittorrent", "transmission")
POLL = 0.02  # completion polling of the daemons: adds at most this much to their time
DOWNLOAD_TIMEOUT = 600.0


@dataclass
class Result:
    seconds: float  # "torrent added" → every piece verified and written
    cpu: float  # CPU seconds of the downloading process over that time
    peak_mib: float
    started: float  # perf_counter() at "torrent added"
    note: str = ""
    first_byte: float = float("nan")  # seconds from "torrent added" to the seeder's first payload byte out


class FirstByte:
    """Watches the seeder's upload counter from a thread: when did the first payload byte leave?

    The same probe for every contender, outside all of them, so a wall time splits into getting started
    (adding, announcing, connecting, unchoking) and moving the bytes."""

    def __init__(self, seeder, info_hash: str) -> None:
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(seeder, info_hash), daemon=True)
        self._thread.start()

    def _watch(self, seeder, info_hash: str) -> None:
        while self.at is None and not self._stop.wait(0.005):
            if seeder.uploaded_bytes(info_hash) > 0:
                self.at = time.perf_counter()

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.at


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_of(pid: int) -> float:
    value = cpu_seconds(pid)
    if value is None:
        raise RuntimeError(f"no /proc/{pid}/stat: this benchmark needs Linux")
    return value


# --- plain libtorrent, warm: a child process with its session up, one download per command ------------------


def plain_client() -> None:
    """The reference. Reads `[torrent_path, save_path]` lines; for each: add, wait until every piece is
    verified and flushed, print `done`; on the next line, remove the torrent with its files, print `removed`."""
    import libtorrent as lt

    session = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                          "enable_upnp": False, "enable_natpmp": False, **LOOPBACK,
                          "alert_mask": lt.alert_category.storage | lt.alert_category.status})
    print("ready", flush=True)
    for line in sys.stdin:
        torrent_path, save_path = json.loads(line)
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(Path(torrent_path).read_bytes())
        params.save_path = save_path
        handle = session.add_torrent(params)
        while not handle.status().is_seeding:
            session.wait_for_alert(50)
            session.pop_alerts()
        # libtorrent 2.x can report seeding before its store buffer reached the files: flush, as the engine does.
        handle.flush_cache()
        _wait_alert(session, lt.cache_flushed_alert)
        print("done", flush=True)
        sys.stdin.readline()  # the parent checks the files first, then asks for the removal
        session.remove_torrent(handle, lt.session.delete_files)
        _wait_alert(session, lt.torrent_deleted_alert)
        print("removed", flush=True)


def _wait_alert(session, kind) -> None:
    while not any(isinstance(a, kind) for a in session.pop_alerts()):
        session.wait_for_alert(100)


class Plain:
    name = "plain"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.log = (work / "plain.log").open("wb")
        self.proc = subprocess.Popen([PY, __file__, "--plain-client"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.pid = self.proc.pid
        self._expect("ready")

    def _expect(self, word: str) -> None:
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"plain client said {line!r}, expected {word!r} (see {self.log.name})")

    def download(self, record, check: Callable[[Path], None]) -> Result:
        save = self.work / "plain-dl"
        save.mkdir()
        cpu0 = cpu_of(self.pid)
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps([str(record.torrent_path), str(save)]) + "\n")
        self.proc.stdin.flush()
        self._expect("done")
        seconds = time.perf_counter() - t0
        cpu = cpu_of(self.pid) - cpu0
        check(save)
        self.proc.stdin.write("remove\n")
        self.proc.stdin.flush()
        self._expect("removed")
        shutil.rmtree(save)
        return Result(seconds, cpu, peak_rss_mib(self.pid), t0)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


# --- Flotilla's engine: `manage.py runengine`, a job per download ------------------------------------------


class Engine:
    name = "engine"

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        from billing.services import current_plan
        from downloads.models import ProcessHeartbeat
        from tests.accounts.factories import UserFactory

        self.user = UserFactory(email="bench@example.com")
        plan = current_plan(self.user)
        # No seeding after the download and no quota in the way: the job completes once its files are in.
        plan.seed_ratio_limit, plan.seed_time_limit_minutes, plan.max_storage_bytes = 0, 0, 0
        plan.max_job_size_bytes = 0
        plan.save()
        self.log = (work / "engine.log").open("wb")
        self.proc = subprocess.Popen([PY, "manage.py", "runengine"], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        # Warm: the session is up and its first heartbeat is written before any clock runs.
        wait_for(lambda: ProcessHeartbeat.objects.filter(name=ENGINE_NAME).exists(), "the engine's heartbeat",
                 60, self.proc)

    def download(self, record, check: Callable[[Path], None]) -> Result:
        from downloads import services
        from downloads.models import EventKind, Job, JobEvent, Status

        cpu0 = cpu_of(self.pid)
        added, t0 = datetime.now(UTC), time.perf_counter()
        job = services.add_torrent(self.user, record.torrent_bytes)
        seeding = JobEvent.objects.filter(job_id=job.pk, kind=EventKind.STATUS, code="seeding")
        wait_for(seeding.exists, f"engine job {job.pk} seeding", DOWNLOAD_TIMEOUT, self.proc, interval=POLL)
        cpu = cpu_of(self.pid) - cpu0
        stamps = dict(JobEvent.objects.filter(job_id=job.pk, kind=EventKind.STATUS, code__in=["starting", "seeding"])
                      .values_list("code", "created_at"))
        seconds = (stamps["seeding"] - added).total_seconds()
        inside = (stamps["seeding"] - stamps["starting"]).total_seconds()
        wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.COMPLETED).exists(),
                 f"engine job {job.pk} completed", 60, self.proc, interval=POLL)
        job.refresh_from_db()
        check(job.data_dir)
        services.delete_job(self.user, job)
        return Result(seconds, cpu, peak_rss_mib(self.pid), t0, note=f"claim→seeding {inside:.2f} s")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


# --- the daemons, started by the test suite's helpers ----------------------------------------------------


class QBittorrent:
    name = "qbittorrent"
    DONE_STATES = {"uploading", "stalledUP", "queuedUP", "forcedUP"}

    def __init__(self, work: Path) -> None:
        import qbittorrentapi

        from tests.servers import daemons

        self.daemon = daemons.start_qbittorrent(work / "qbittorrent")
        self.pid = self.daemon.proc.pid
        self.client = qbittorrentapi.Client(host="127.0.0.1", port=self.daemon.rpc_port,
                                            username=self.daemon.username, password=self.daemon.password,
                                            REQUESTS_ARGS={"timeout": 10})
        self.client.auth_log_in()
        # TCP only like the others (qBittorrent's default is TCP and uTP).
        self.client.app_set_preferences({"bittorrent_protocol": 1})

    def download(self, record, check: Callable[[Path], None]) -> Result:
        save = self.daemon.download_dir
        cpu0 = cpu_of(self.pid)
        t0 = time.perf_counter()
        answer = self.client.torrents_add(torrent_files=record.torrent_bytes, save_path=str(save))
        if answer != "Ok.":
            raise RuntimeError(f"qbittorrent refused the torrent: {answer}")

        def done() -> bool:
            info = self.client.torrents_info(torrent_hashes=record.info_hash)
            return bool(info) and info[0].progress == 1 and info[0].state in self.DONE_STATES

        wait_for(done, "qbittorrent download", DOWNLOAD_TIMEOUT, self.daemon.proc, interval=POLL)
        seconds = time.perf_counter() - t0
        cpu = cpu_of(self.pid) - cpu0
        check(save)
        self.client.torrents_delete(delete_files=True, torrent_hashes=record.info_hash)
        wait_for(lambda: not self.client.torrents_info(torrent_hashes=record.info_hash), "qbittorrent removal",
                 60, self.daemon.proc)
        return Result(seconds, cpu, peak_rss_mib(self.pid), t0)

    def close(self) -> None:
        self.daemon.stop()


class Transmission:
    name = "transmission"

    def __init__(self, work: Path, seeder) -> None:
        import transmission_rpc

        from tests.servers import daemons

        self.seeder = seeder
        self.daemon = daemons.start_transmission(work / "transmission")
        self.pid = self.daemon.proc.pid
        self.client = transmission_rpc.Client(host="127.0.0.1", port=self.daemon.rpc_port,
                                              username=self.daemon.username, password=self.daemon.password,
                                              timeout=10)

    def download(self, record, check: Callable[[Path], None]) -> Result:
        save = self.daemon.download_dir
        fields = ["id", "status", "percentDone", "leftUntilDone", "peersConnected"]
        cpu0 = cpu_of(self.pid)
        t0 = time.perf_counter()
        torrent_id = self.client.add_torrent(record.torrent_bytes, download_dir=str(save)).id
        dialled = [0.0]

        def done() -> bool:
            t = self.client.get_torrent(torrent_id, arguments=fields)
            if t.percent_done == 1 and t.left_until_done == 0:
                return True
            # Transmission 3.00 never dials a 127.x peer: the seeder dials it (research §5), again each
            # second until a connection holds (one too early is refused: the torrent was not known yet).
            if t.status == "downloading" and not t.peers_connected and time.monotonic() - dialled[0] > 1:
                self.seeder.connect(record.info_hash, ("127.0.0.1", self.daemon.peer_port))
                dialled[0] = time.monotonic()
            return False

        wait_for(done, "transmission download", DOWNLOAD_TIMEOUT, self.daemon.proc, interval=POLL)
        seconds = time.perf_counter() - t0
        cpu = cpu_of(self.pid) - cpu0
        check(save)
        self.client.remove_torrent(torrent_id, delete_data=True)
        wait_for(lambda: not self.client.get_torrents(arguments=["id"]), "transmission removal", 60,
                 self.daemon.proc)
        return Result(seconds, cpu, peak_rss_mib(self.pid), t0)

    def close(self) -> None:
        self.client._http_session.close()
        self.daemon.stop()


# --- the run -------------------------------------------------------------------------------------------


def fresh_seed(swarm, record) -> None:
    """Drop and re-add the torrent on the seeder, with the tracker in step at each step.

    Why: a libtorrent seed never re-dials a peer it once marked as a seed (transmission's next round would
    stall), and the tracker must see the `stopped` before the new `started` or it would forget the seeder.
    """
    port = swarm.seeder.port

    def listed() -> bool:
        return any(p.port == port for p in swarm.tracker.peers(record.info_hash))

    swarm.seeder.remove(record.info_hash)
    wait_for(lambda: not listed(), "the tracker to drop the seeder", 30)
    swarm.seeder.add(record.torrent_bytes, record.save_path)
    wait_for(listed, "the tracker to list the seeder", 30)


def checker(record) -> Callable[[Path], None]:
    from downloads.swarm import sha256_file

    def check(save_path: Path) -> None:
        bad = [rel for rel, digest in record.files.items() if sha256_file(save_path / rel) != digest]
        if bad:
            raise RuntimeError(f"sha256 mismatch in {save_path}: {bad}")

    return check


def report(results: dict[str, list[Result]], size_mib: int) -> None:
    plain_s = statistics.median(r.seconds for r in results["plain"])
    print("\nmedians (ratio = contender throughput / plain libtorrent throughput, same run):")
    print(f"{'contender':<14}{'wall s':>8}{'MiB/s':>8}{'ratio':>7}{'CPU s/GiB':>11}{'1st byte s':>11}"
          f"{'then MiB/s':>11}{'VmHWM MiB':>11}  rounds (s)")
    for name, rows in results.items():
        secs = statistics.median(r.seconds for r in rows)
        first = statistics.median(r.first_byte for r in rows)
        moving = statistics.median(size_mib / (r.seconds - r.first_byte) for r in rows)
        cpu = statistics.median(r.cpu for r in rows) / (size_mib * MIB / GIB)
        peak = max(r.peak_mib for r in rows)
        rounds = ", ".join(f"{r.seconds:.2f}" for r in rows)
        print(f"{name:<14}{secs:>8.2f}{size_mib / secs:>8.0f}{plain_s / secs:>7.2f}{cpu:>11.2f}{first:>11.2f}"
              f"{moving:>11.0f}{peak:>11.0f}  {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated subset of %(default)s (plain is always run: it is the reference)")
    parser.add_argument("--plain-client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_client:
        plain_client()
        return
    names = ["plain", *(n for n in args.contenders.split(",") if n and n != "plain")]
    if unknown := set(names) - set(CONTENDERS):
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")

    size = args.size_mib * MIB
    with environment(**ENGINE_ENV, PROGRESS_EVENT_INTERVAL="1.0") as env, ExitStack() as stack:
        setup_django()
        from downloads.swarm import Swarm

        work = Path(tempfile.mkdtemp(prefix="engine-bench-", dir=env["DATA_DIR"]))
        swarm = stack.enter_context(Swarm(work / "swarm"))
        spec = size if args.files == 1 else {f"f{i}.bin": size // args.files for i in range(args.files)}
        record = swarm.publish("payload", spec)
        check = checker(record)
        print(f"# payload {args.size_mib} MiB in {args.files} file(s), {args.rounds} rounds, order rotated each "
              f"round; TCP only; warm: every downloader is up and idle before its clock starts")
        print(f"# {load_note()}", flush=True)
        starters = {"plain": lambda: Plain(work), "engine": lambda: Engine(work, env),
                    "qbittorrent": lambda: QBittorrent(work), "transmission": lambda: Transmission(work, swarm.seeder)}
        contenders = []
        for name in names:
            contender = starters[name]()
            stack.callback(contender.close)
            contenders.append(contender)
        results: dict[str, list[Result]] = {c.name: [] for c in contenders}
        for n in range(args.rounds):
            order = contenders[n % len(contenders):] + contenders[:n % len(contenders)]
            line = []
            for contender in order:
                fresh_seed(swarm, record)
                os.sync()  # nothing left to write back from the previous download
                probe = FirstByte(swarm.seeder, record.info_hash)
                try:
                    result = contender.download(record, check)
                finally:
                    first = probe.stop()
                if first is not None:
                    result.first_byte = first - result.started
                results[contender.name].append(result)
                extra = f", {result.note}" if result.note else ""
                line.append(f"{contender.name} {result.seconds:.2f} s ({args.size_mib / result.seconds:.0f} MiB/s, "
                            f"first byte {result.first_byte:.2f} s{extra})")
            print(f"round {n + 1}: " + "  ".join(line), flush=True)
        report(results, args.size_mib)
        print(f"# {load_note()}")


if __name__ == "__main__":
    main()
