"""Engine throughput against a plain libtorrent script, on the same torrent from the same loopback seeder.

In one run: a payload is seeded on 127.0.0.1 (downloads.swarm: tracker + libtorrent seeder). Then, in
alternating rounds, (a) a bare libtorrent script in its own process downloads it (the reference) and (b)
the real `manage.py runengine` downloads it as a Flotilla job (claimed from the database, progress written
through the spine every second, resume data saved). Both use the same loopback session settings.

Printed per round and as medians: seconds from adding the torrent to "finished" (engine: from its claim
event to its seeding event), MiB/s, the ratio engine/reference (target ≥ 0.9), CPU seconds per GiB and peak
memory (VmHWM) of each process. Options: --size-mib (256), --rounds (3), --files (1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PY, ROOT, cpu_seconds, environment, setup_django

MIB = 1 << 20
# TCP only, for both: on a loaded loopback uTP's timing swings a 64 MiB download from 0.8 s to 7 s
# (bench/README.md, swarm_throughput), which would drown the difference being measured.
LOOPBACK = {"allow_multiple_connections_per_ip": True, "min_reconnect_time": 1, "enable_outgoing_utp": False,
            "enable_incoming_utp": False}
ENGINE_ENV = {
    "ENGINE_LISTEN_INTERFACES": "127.0.0.1:0", "ENGINE_DHT": "false", "ENGINE_LSD": "false",
    "ENGINE_UPNP": "false", "ENGINE_NATPMP": "false", "ENGINE_LIBTORRENT_SETTINGS": json.dumps(LOOPBACK),
    "ENGINE_NAME": "bench-engine",
}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def plain_client(torrent_path: str, save_path: str) -> None:
    """The reference: add the .torrent to a bare session, wait until finished, print the figures as JSON."""
    import libtorrent as lt

    session = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                          "enable_upnp": False, "enable_natpmp": False, **LOOPBACK})
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(Path(torrent_path).read_bytes())
    params.save_path = save_path
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    handle = session.add_torrent(params)
    while not handle.status().is_finished:
        session.wait_for_alert(50)
        session.pop_alerts()
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_mib": peak_rss_mib(os.getpid())}), flush=True)


def reference_round(torrent_path: Path, work: Path, n: int) -> dict:
    save = work / f"plain-{n}"
    save.mkdir()
    out = subprocess.run([PY, __file__, "--plain-client", str(torrent_path), str(save)], capture_output=True,
                         text=True, check=True, timeout=600)
    shutil.rmtree(save)  # like the engine round's delete_job: no dirty pages left to slow the next round
    return json.loads(out.stdout.strip().splitlines()[-1])


def engine_round(user, torrent: bytes, engine_pid: int) -> dict:
    from downloads import services
    from downloads.models import EventKind, Job, JobEvent, Status

    cpu_before = cpu_seconds(engine_pid)
    job = services.add_torrent(user, torrent)
    deadline = time.monotonic() + 600
    while Job.objects.values_list("status", flat=True).get(pk=job.pk) != Status.COMPLETED:
        if time.monotonic() > deadline:
            raise RuntimeError(f"engine did not complete job {job.pk}")
        time.sleep(0.05)
    cpu = cpu_seconds(engine_pid) - cpu_before
    stamps = dict(JobEvent.objects.filter(job_id=job.pk, kind=EventKind.STATUS, code__in=["starting", "seeding"])
                  .values_list("code", "created_at"))
    seconds = (stamps["seeding"] - stamps["starting"]).total_seconds()
    services.delete_job(user, job)  # keep the disk from filling over many rounds
    return {"seconds": seconds, "cpu": cpu, "peak_mib": peak_rss_mib(engine_pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--plain-client", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_client:
        plain_client(*args.plain_client)
        return

    size = args.size_mib * MIB
    with environment(**ENGINE_ENV, PROGRESS_EVENT_INTERVAL="1.0") as env:
        setup_django()
        from billing.services import current_plan
        from downloads.swarm import Swarm
        from tests.accounts.factories import UserFactory

        user = UserFactory(email="bench@example.com")
        plan = current_plan(user)
        plan.seed_ratio_limit, plan.seed_time_limit_minutes, plan.max_storage_bytes = 0, 0, 0
        plan.max_job_size_bytes = 0
        plan.save()
        work = Path(tempfile.mkdtemp(prefix="engine-bench-", dir=env["DATA_DIR"]))
        with Swarm(work / "swarm") as swarm:
            spec = size if args.files == 1 else {f"f{i}.bin": size // args.files for i in range(args.files)}
            record = swarm.publish("payload", spec)
            print(f"# payload {args.size_mib} MiB in {args.files} file(s), {args.rounds} rounds each, alternating")
            log = (work / "engine.log").open("wb")
            engine = subprocess.Popen([PY, "manage.py", "runengine"], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
            try:
                time.sleep(2)  # session up, first heartbeat written
                plain, eng = [], []
                for n in range(args.rounds):
                    os.sync()  # each round starts with nothing waiting to be written back
                    plain.append(reference_round(record.torrent_path, work, n))
                    os.sync()
                    eng.append(engine_round(user, record.torrent_bytes, engine.pid))
                    p, e = plain[-1], eng[-1]
                    print(f"round {n + 1}: plain {p['seconds']:.2f} s ({args.size_mib / p['seconds']:.0f} MiB/s)  "
                          f"engine {e['seconds']:.2f} s ({args.size_mib / e['seconds']:.0f} MiB/s)  "
                          f"ratio {p['seconds'] / e['seconds']:.2f}", flush=True)
            finally:
                engine.terminate()
                engine.wait(timeout=30)
                log.close()
        gib = size / (1 << 30)
        p_s = statistics.median(r["seconds"] for r in plain)
        e_s = statistics.median(r["seconds"] for r in eng)
        print(f"median: plain {args.size_mib / p_s:.0f} MiB/s, engine {args.size_mib / e_s:.0f} MiB/s, "
              f"engine/plain throughput ratio {p_s / e_s:.2f} (target >= 0.9)")
        print(f"CPU per GiB: plain {statistics.median(r['cpu'] for r in plain) / gib:.2f} s, "
              f"engine {statistics.median(r['cpu'] for r in eng) / gib:.2f} s")
        print(f"peak memory (VmHWM): plain {max(r['peak_mib'] for r in plain):.0f} MiB, "
              f"engine {max(r['peak_mib'] for r in eng):.0f} MiB (includes Django and its database client)")


if __name__ == "__main__":
    main()
