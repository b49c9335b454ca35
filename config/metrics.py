"""Prometheus metrics: HTTP latency and the multi-process plumbing. The `/metrics` endpoint and its access
rule are in downloads/metrics.py, above accounts and the spine whose facts it serves.

Two kinds of figures, chosen by where the truth lives:
- Facts in the database (jobs by status, waiting jobs, heartbeats, engine capacity, relay lag, task
  queue) are computed at scrape time by collectors (downloads/metrics.py). Any web process answers the
  same numbers, whichever process caused them.
- Observations made inside a process (HTTP latency here, job durations where a job ends) use
  prometheus-client's multi-process mode: every process (daphne, qcluster workers, runengine) writes its
  own memory-mapped file under PROMETHEUS_MULTIPROC_DIR (settings set it before anything imports
  prometheus_client) and the scrape sums them. Files are named `<type>_<host>-<pid>.db` so processes of
  several hosts (or containers) sharing DATA_DIR never write into one file. A dead process's counts are
  folded into one `<type>_<host>-dead.db` per host at the next scrape, so its totals stay (no false
  counter reset) while its file goes away.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Histogram, generate_latest, values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
_DEAD = "dead"
# Types whose values add up across processes; live gauges are not used (gauges come from the database).
_SUMMED = ("counter", "histogram", "summary")


def _identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
if MULTIPROCESS:
    # Read when each metric child is created, so this must run before any metric is used.
    values.ValueClass = values.MultiProcessValue(process_identifier=_identifier)

HTTP_LATENCY = Histogram(
    "flotilla_http_request_duration_seconds",
    "Time from request to response headers, by route pattern (never the raw path), method and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class RequestMetricsMiddleware:
    """Observes every request's latency. The label is the URL pattern (`api/v1/jobs/<int:pk>/`), so ids
    and signed-link tokens never become label values; unmatched paths share one label."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        HTTP_LATENCY.labels(route, request.method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response


# --- the scrape -----------------------------------------------------------------------------------


def metrics_dir() -> Path:
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


@contextlib.contextmanager
def _files_lock(*, exclusive: bool) -> Iterator[None]:
    """Scrapes read under a shared lock, folding takes it exclusively: a scrape never sees a dead
    process's counts twice (in its file and in the folded file) or not at all."""
    with (metrics_dir() / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def dead_files() -> list[Path]:
    """This host's per-process files whose process has exited (other hosts fold their own)."""
    pattern = re.compile(rf"^({'|'.join(_SUMMED)})_{re.escape(_HOST)}-(\d+)\.db$")
    found = []
    for path in metrics_dir().glob("*.db"):
        match = pattern.match(path.name)
        if match and not _pid_alive(int(match.group(2))):
            found.append(path)
    return found


def fold_dead_processes() -> int:
    """Add each dead process's values into its host's `<type>_<host>-dead.db`, then remove its file."""
    dead = dead_files()
    if not dead:
        return 0
    with _files_lock(exclusive=True):
        for path in dead_files():  # again under the lock: another scrape may have folded them already
            typ = path.name.split("_", 1)[0]
            target = MmapedDict(str(metrics_dir() / f"{typ}_{_HOST}-{_DEAD}.db"))
            try:
                for key, value, timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
                    current, _ = target.read_value(key)
                    target.write_value(key, current + value, timestamp)
            finally:
                target.close()
            path.unlink()
    return len(dead)


def registry(*collectors: Collector) -> CollectorRegistry:
    """A fresh registry per scrape (prometheus-client's advice in multi-process mode), with the caller's
    collectors of database facts (the apps above config own them: downloads.metrics serves the scrape)."""
    reg = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS:
        MultiProcessCollector(reg, path=str(metrics_dir()))
    else:  # a process started without PROMETHEUS_MULTIPROC_DIR (e.g. a bare script): its own values
        reg.register(HTTP_LATENCY)
    for collector in collectors:
        reg.register(collector)
    return reg


def render(*collectors: Collector) -> bytes:
    """The text exposition of every process's observations plus `collectors`."""
    if not MULTIPROCESS:
        return generate_latest(registry(*collectors))
    fold_dead_processes()
    with _files_lock(exclusive=False):
        return generate_latest(registry(*collectors))

