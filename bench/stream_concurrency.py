"""Memory per stream and errors with 5 and 50 concurrent streams, of a file still downloading and of a completed one.

daphne and `manage.py runengine` run as separate processes. Two jobs of one user:
- `downloading`: a random 64 MiB `.mp4` on the loopback swarm (downloads.swarm), its seeder rate-limited
  (--seed-rate-kib, 1024) so the job is still downloading through its phases (run first); streamed through the
  engine's stream channel (streaming/live.py ↔ downloads/engine/streams.py);
- `completed`: a random 64 MiB file of a completed job, streamed from disk (streaming/files.py).
The files are small to keep the runs short on this shared machine (50 x 64 MiB on disk and in the swarm). A
slow client's body does not pile up in daphne's memory: the web process is config.daphne, whose server makes a
response wait while the client's socket is not draining (config/asgi_server.py), so a stream costs about its
64 KiB send buffer plus one chunk.
Each phase starts N curl clients at once, each reading `Range: bytes=<i·size/N>-` (spread over the file, as
viewers who seek) at --client-rate-kib (1024) for --seconds (10), then stopping (curl --max-time).

Memory: the resident set (VmRSS) of daphne + engine sampled every 50 ms; the baseline is taken after a warm-up
stream (imports, thread pools) and before the phase; "per admitted stream" = (peak during the phase - baseline)
divided by the streams answered 2xx.
"after" is the RSS once the clients are gone (memory kept). Each phase has a fresh daphne (the engine stays).
Errors: the HTTP statuses curl saw (000: no answer before it stopped), curl exits other than 0 and 28 (its
--max-time), tracebacks in the daphne and engine logs, and whether every stream slot was given back (the stats
API's `active_streams` back to 0).

The plan's concurrent-stream limit (default 10) is lifted for the measurements; a last phase runs 50 streams of
the completed file with the default limit back, to show its 503s. Options: --size-mib, --streams (5,50),
--seconds, --client-rate-kib, --seed-rate-kib, --files (downloading,completed).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import environment, load_note, setup_django, wait_for
from bench.stream_common import (
    ENGINE_ENV,
    MIB,
    auth,
    completed_file,
    daphne,
    engine,
    make_user,
    rss_bytes,
    set_stream_limit,
)
from bench.stream_throughput import write_random


def rss_of(pids: list[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


class Sampler:
    """Peak VmRSS sum of `pids` (and each one's share at that moment), sampled from a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self.split: list[int] = [0] * len(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            split = [rss_bytes(pid) for pid in self.pids]
            if sum(split) > self.peak:
                self.peak, self.split = sum(split), split

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Phase:
    label: str
    streams: int
    baseline: int
    peak: int
    split: list[int]  # daphne, engine at the peak
    after: int
    statuses: collections.Counter
    curl_errors: collections.Counter
    received: int
    slots_back: str
    log_errors: int


def log_errors(*logs: Path) -> int:
    return sum(log.read_text(errors="replace").count("Traceback") for log in logs if log.exists())


def stream_clients(url: str, size: int, n: int, seconds: float, rate_kib: int) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        start = i * size // n
        procs.append(subprocess.Popen(
            ["curl", "-s", "-o", "/dev/null", "--max-time", str(seconds), "--limit-rate", f"{rate_kib}k",
             "-H", f"Authorization: {auth()['Authorization']}", "-r", f"{start}-",
             "-w", "%{http_code} %{size_download}", url],
            stdout=subprocess.PIPE, text=True))
    return procs


def active_streams(base: str, jobfile) -> int:
    import httpx

    answer = httpx.get(f"{base}/api/v1/stream/{jobfile.job_id}/{jobfile.pk}/stats/", headers=auth(), timeout=30)
    return int(answer.json()["active_streams"])


def phase(label: str, base: str, jobfile, size: int, n: int, args, pids: list[int], logs: list[Path]) -> Phase:
    url = f"{base}/api/v1/stream/{jobfile.job_id}/{jobfile.pk}"
    errors_before = log_errors(*logs)
    sampler = Sampler(pids)
    time.sleep(1.0)  # a second of idle samples: the baseline is their peak
    baseline = sampler.stop()
    sampler = Sampler(pids)
    clients = stream_clients(url, size, n, args.seconds, args.client_rate_kib)
    statuses: collections.Counter = collections.Counter()
    curl_errors: collections.Counter = collections.Counter()
    received = 0
    for client in clients:
        out, _ = client.communicate(timeout=args.seconds + 60)
        code, got = [*out.split(), "000", "0"][:2]
        statuses[code] += 1
        received += int(got)
        if client.returncode not in (0, 28):
            curl_errors[client.returncode] += 1
    peak = sampler.stop()
    split = sampler.split
    try:
        wait_for(lambda: active_streams(base, jobfile) == 0, "every stream slot given back", 60)
        slots = "yes"
    except TimeoutError:
        slots = f"NO: {active_streams(base, jobfile)} still counted after 60 s"
    time.sleep(1.0)  # let daphne finish its clean-ups before reading what it kept
    after = rss_of(pids)
    return Phase(label, n, baseline, peak, split, after, statuses, curl_errors, received, slots,
                 log_errors(*logs) - errors_before)


def show(p: Phase, seconds: float) -> None:
    admitted = sum(count for code, count in p.statuses.items() if code.startswith("2"))
    per = (p.peak - p.baseline) / max(1, admitted) / MIB
    statuses = ", ".join(f"{code} x{count}" for code, count in sorted(p.statuses.items()))
    curl_errors = ", ".join(f"exit {code} x{count}" for code, count in sorted(p.curl_errors.items())) or "none"
    print(f"{p.label:<34} RSS {p.baseline / MIB:6.0f} → peak {p.peak / MIB:6.0f} → after {p.after / MIB:6.0f} MiB"
          f" (daphne {p.split[0] / MIB:.0f} + engine {p.split[1] / MIB:.0f})  per admitted stream {per:5.1f} MiB"
          f"  | statuses {statuses}; curl errors {curl_errors}; "
          f"tracebacks {p.log_errors}; slots back {p.slots_back}; "
          f"{p.received / MIB / seconds:.0f} MiB/s delivered in all", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--streams", default="5,50")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client-rate-kib", type=int, default=1024)
    parser.add_argument("--seed-rate-kib", type=int, default=1024)
    parser.add_argument("--files", default="downloading,completed")
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    kinds = args.files.split(",")
    size = args.size_mib * MIB
    with environment(**ENGINE_ENV) as env, ExitStack() as stack:
        setup_django()
        from billing.models import Plan
        from downloads import services
        from downloads.models import Job, JobFile
        from downloads.swarm import Swarm

        work = Path(env["DATA_DIR"]) / "bench"
        work.mkdir()
        user = make_user(max_streams=0)
        eng = stack.enter_context(engine(env))
        jobs = {}
        if "downloading" in kinds:
            swarm = stack.enter_context(Swarm(work / "swarm"))
            record = swarm.publish("live.mp4", size, upload_limit=args.seed_rate_kib * 1024)
            job = services.add_magnet(user, record.magnet)
            wait_for(lambda: Job.objects.get(pk=job.pk).claimed_by and JobFile.objects.filter(job=job).exists(),
                     "the engine holds the job and knows its file", 120)
            wait_for(lambda: JobFile.objects.get(job=job).completed_bytes > 0, "the first bytes downloaded", 120)
            jobs["downloading"] = JobFile.objects.get(job=job)
        if "completed" in kinds:
            source = work / "done.mp4"
            write_random(source, size)
            jobs["completed"] = completed_file(user, source, "done.mp4", "video/mp4")
        default_limit = Plan._meta.get_field("max_concurrent_streams").default
        print(f"# {args.size_mib} MiB files; clients: curl at {args.client_rate_kib} KiB/s each for "
              f"{args.seconds:g} s, Range start spread over the file; seeder limited to {args.seed_rate_kib} KiB/s; "
              f"RSS = daphne + engine; plan stream limit lifted (default {default_limit})")
        print(f"# {load_note()}", flush=True)

        def run(label: str, jobfile, n: int) -> None:
            # A fresh daphne per phase: memory a previous phase left in its heap would hide this one's.
            with daphne(env, f"daphne-{label.replace(' ', '').replace(',', '-')}") as web:
                # warm-up: one short stream (imports, thread pools, first queries) before the baseline
                url = f"{web.url}/api/v1/stream/{jobfile.job_id}/{jobfile.pk}"
                stream_clients(url, size, 1, 1, args.client_rate_kib)[0].wait()
                result = phase(label, web.url, jobfile, size, n, args, [web.pid, eng.pid], [web.log, eng.log])
            show(result, args.seconds)

        for kind, jobfile in jobs.items():
            for n in counts:
                run(f"{kind}, {n} streams", jobfile, n)
                if kind == "downloading":  # still downloading when the phase ended?
                    left = Job.objects.get(pk=jobfile.job_id)
                    print(f"  (then: job {left.status}, {JobFile.objects.get(pk=jobfile.pk).completed_bytes / MIB:.0f}"
                          f" of {args.size_mib} MiB downloaded)", flush=True)
        if "completed" in jobs:
            set_stream_limit(user, default_limit)
            n = max(counts)
            run(f"completed, {n} streams, limit {default_limit}", jobs["completed"], n)
        print(f"# {load_note()}")


if __name__ == "__main__":
    main()
