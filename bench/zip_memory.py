"""Peak memory while streaming a 1 GiB folder as a zip (and one big file), in-process and through daphne.

    .venv/bin/python bench/zip_memory.py [--size-mib 1024] [--files 4] [--random]

Builds a throwaway DATA_DIR (SQLite database, one user, one job whose folder holds `--files` files adding up to
`--size-mib`, sparse unless --random), then:
1. consumes the zip generator the view uses, in this process, and reports ru_maxrss before/after;
2. starts a real daphne on 127.0.0.1, downloads the zip link and the first file's link with httpx (discarding
   the bytes), and reports daphne's peak RSS (VmHWM) before/after and the throughput.
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def peak_rss_mib_self() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def vm_hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def setup_django(data_dir: Path) -> None:
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_job(size_mib: int, count: int, *, random: bool):
    from accounts.models import User
    from billing.models import Plan, PlanAssignment
    from downloads.models import Job, JobFile, Status

    user = User.objects.create_user("bench@example.com", "bench password 123")
    unlimited = Plan.objects.create(name="bench", monthly_transfer_bytes=0, max_storage_bytes=0)
    PlanAssignment.objects.create(user=user, plan=unlimited)
    job = Job.objects.create(user=user, backend="engine", status=Status.COMPLETED, name="bench")
    each = size_mib * MIB // count
    for i in range(count):
        rel = f"bench/part{i}.bin"
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            if random:
                for _ in range(each // MIB):
                    fh.write(os.urandom(MIB))
            fh.truncate(each)
        JobFile.objects.create(job=job, path=rel, size_bytes=each, completed_bytes=each)
    return user, job


def in_process(job) -> None:
    from streaming import sending, zips

    before = peak_rss_mib_self()
    stream = zips.build_zip(job, "")
    size = len(stream)
    started = time.perf_counter()
    sent = sum(len(chunk) for chunk in sending.coalesce(stream))
    elapsed = time.perf_counter() - started
    print(f"in-process generator: zip {size / MIB:.0f} MiB, streamed {sent / MIB:.0f} MiB in {elapsed:.1f}s "
          f"({sent / MIB / elapsed:.0f} MiB/s); peak RSS {before:.0f} MiB before, {peak_rss_mib_self():.0f} MiB after")


def download(client, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    received = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            received += len(chunk)
    return received, time.perf_counter() - started


def through_daphne(data_dir: Path, user, job) -> None:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines would print the signed links

    from streaming import links
    from tests.procs import free_port, port_open, process_env, running, wait_ready

    port = free_port()
    cmd = [sys.executable, "-m", "config.daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    with running(cmd, process_env(data_dir), data_dir / "daphne.log") as proc:
        wait_ready(lambda: port_open(port), "daphne", proc, data_dir / "daphne.log")
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=120) as client:
            client.get(base + "/healthz").raise_for_status()
            idle = vm_hwm_mib(proc.pid)
            first = job.files.order_by("path").first()
            for label, url in [("zip of the job", links.zip_link(user.pk, job)),
                               ("single file", links.file_link(user.pk, first))]:
                received, elapsed = download(client, base + url)
                print(f"daphne {label}: {received / MIB:.0f} MiB in {elapsed:.1f}s "
                      f"({received / MIB / elapsed:.0f} MiB/s); daphne peak RSS {idle:.0f} MiB idle, "
                      f"{vm_hwm_mib(proc.pid):.0f} MiB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--random", action="store_true", help="write random bytes instead of sparse files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-") as tmp:
        data_dir = Path(tmp)
        setup_django(data_dir)
        user, job = make_job(args.size_mib, args.files, random=args.random)
        print(f"folder: {args.files} files, {args.size_mib} MiB total ({'random' if args.random else 'sparse'})")
        in_process(job)
        through_daphne(data_dir, user, job)


if __name__ == "__main__":
    main()
