"""Shared set-up for the streaming benchmarks (bench/stream_*.py): a user with an API key and a plan, the engine
and daphne as separate processes, a throw-away nginx, a completed file on disk, and process measurements.

Processes run with the bench's temporary DATA_DIR (bench/_common.environment); nginx is Debian's binary, run in
the foreground with its own prefix (as tests/e2e/test_range_vs_nginx.py does) and `master_process off`, so one
process serves everything and its CPU time is one /proc read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench._common import PY, ROOT, cpu_seconds, free_port, wait_for

MIB = 1 << 20
GIB = 1 << 30
API_KEY = "flt_bench_stream_" + "s" * 32
ENGINE_NAME = "bench-stream-engine"
# Loopback only, TCP only (uTP's timing on a loaded loopback swings 10x: bench/README.md, swarm_throughput).
LOOPBACK = {"allow_multiple_connections_per_ip": True, "min_reconnect_time": 1, "enable_outgoing_utp": False,
            "enable_incoming_utp": False}
ENGINE_ENV = {
    "ENGINE_LISTEN_INTERFACES": "127.0.0.1:0", "ENGINE_DHT": "false", "ENGINE_LSD": "false",
    "ENGINE_UPNP": "false", "ENGINE_NATPMP": "false", "ENGINE_LIBTORRENT_SETTINGS": json.dumps(LOOPBACK),
}


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError("nginx is missing (Debian package nginx, `make debs-test`): it is the reference")
    return found


NGINX_CONF = """\
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{ video/mp4 mp4; application/octet-stream bin; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;          # as Debian's and the nginx image's nginx.conf have it
    tcp_nopush on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""


def direct_location(prefix: str, directory: Path) -> str:
    """nginx serving files of `directory` under `prefix` itself: the reference."""
    return f"        location {prefix} {{ alias {directory}/; }}"


def proxy_location(prefix: str, upstream: str, *, downloads: Path | None = None) -> str:
    """nginx in front of daphne as docker-compose.yml has it; with `downloads`, also the internal location that
    X-Accel-Redirect answers point at (STREAM_OFFLOAD_PREFIX, default /_protected/)."""
    text = (f"        location {prefix} {{\n"
            f"            proxy_pass {upstream};\n"
            f"            proxy_http_version 1.1;\n"
            f"            proxy_set_header Host $host;\n"
            f"            proxy_buffering off;\n"
            f"            proxy_read_timeout 120s;\n"
            f"        }}")
    if downloads is not None:
        text += f"\n        location /_protected/ {{ internal; alias {downloads}/; }}"
    return text


@dataclass
class Proc:
    url: str
    pid: int
    log: Path


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str] | None, log: Path) -> Iterator[subprocess.Popen]:
    out = log.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def nginx(work: Path, locations: list[str], name: str = "nginx") -> Iterator[Proc]:
    prefix = work / name
    prefix.mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, locations="\n".join(locations)))
    log = prefix / "stderr.log"
    with running([nginx_binary(), "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")],
                 None, log) as proc:
        wait_for(lambda: _port_open(port), f"nginx on {port}", 30, proc)
        yield Proc(f"http://127.0.0.1:{port}", proc.pid, log)


@contextlib.contextmanager
def daphne(env: dict[str, str], name: str = "daphne", **extra: str) -> Iterator[Proc]:
    """daphne serving config.asgi (`extra`: settings for this process only, e.g. STREAM_OFFLOAD)."""
    import urllib.request

    port = free_port()
    log = Path(env["DATA_DIR"]) / f"{name}.log"
    cmd = [PY, "-m", "config.daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]

    def healthy() -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
        return False

    with running(cmd, {**env, **extra}, log) as proc:
        wait_for(healthy, f"{name} on {port}", 60, proc)
        yield Proc(f"http://127.0.0.1:{port}", proc.pid, log)


@contextlib.contextmanager
def engine(env: dict[str, str]) -> Iterator[Proc]:
    """`manage.py runengine`, up with its stream channel published in its heartbeat."""
    from downloads.models import ProcessHeartbeat

    log = Path(env["DATA_DIR"]) / "engine.log"
    with running([PY, "manage.py", "runengine", "--name", ENGINE_NAME], env, log) as proc:
        wait_for(lambda: ProcessHeartbeat.objects.filter(name=ENGINE_NAME, info__stream_address__isnull=False)
                 .exists(), "the engine's stream channel", 60, proc)
        yield Proc("", proc.pid, log)


def make_user(max_streams: int = 0):
    """A user with the bench's API key and a plan of its own: no seeding after a download (a finished job leaves
    the engine, so its file is served from disk), no quota in the way, `max_streams` concurrent streams
    (0 = unlimited)."""
    from tests.accounts.factories import ApiKeyFactory, UserFactory
    from tests.billing.factories import PlanAssignmentFactory, PlanFactory

    user = UserFactory(email="bench-stream@example.com")
    ApiKeyFactory(user=user, raw=API_KEY)
    plan = PlanFactory(seed_ratio_limit=0, seed_time_limit_minutes=0, max_concurrent_streams=max_streams,
                       max_storage_bytes=0, max_job_size_bytes=0, monthly_transfer_bytes=0, max_active_jobs=0)
    PlanAssignmentFactory(user=user, plan=plan)
    return user


def set_stream_limit(user, limit: int) -> None:
    from billing.services import current_plan

    plan = current_plan(user)
    plan.max_concurrent_streams = limit
    plan.save(update_fields=["max_concurrent_streams"])


def completed_file(user, source: Path, name: str, mime: str):
    """A completed job whose one file is a hard link to `source` (same bytes, page cache shared with the
    references that read `source`). Returns the JobFile."""
    from downloads.models import Status
    from tests.downloads.factories import JobFactory, JobFileFactory

    job = JobFactory(user=user, status=Status.COMPLETED, name=name)
    target = job.data_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)
    size = source.stat().st_size
    return JobFileFactory(job=job, path=name, size_bytes=size, completed_bytes=size, mime_type=mime)


def auth() -> dict[str, str]:
    return {"Authorization": f"Token {API_KEY}"}


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_of(*pids: int) -> float:
    total = 0.0
    for pid in pids:
        value = cpu_seconds(pid)
        if value is None:
            raise RuntimeError(f"no /proc/{pid}/stat: these benchmarks need Linux")
        total += value
    return total


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def viewport_available() -> bool:
    """Has `POST /api/v1/ui/viewport` (the preload queue, issue 13) landed in this tree?"""
    from django.urls import Resolver404, resolve

    try:
        resolve("/api/v1/ui/viewport")
    except Resolver404:
        try:
            resolve("/api/v1/ui/viewport/")
        except Resolver404:
            return False
    return True


def timestamp() -> float:
    return time.perf_counter()
