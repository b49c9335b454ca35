"""Shared set-up for the benchmarks: a throwaway DATA_DIR and database, Django in this process, daphne.

Every benchmark runs against its own temporary DATA_DIR with a fresh SQLite database migrated by
`manage.py migrate` in a subprocess. Set DATABASE_URL to use another (throwaway!) database instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation), so p100 is the max and p50 a real sample."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def describe_ms(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (f"p50 {percentile(ms, 50):.1f} ms  p95 {percentile(ms, 95):.1f} ms  p99 {percentile(ms, 99):.1f} ms  "
            f"max {max(ms):.1f} ms  mean {statistics.fmean(ms):.1f} ms")


def _keys() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "LOOKUP_HASH_KEY": secrets.token_urlsafe(32),
    }


@contextlib.contextmanager
def environment(**extra: str) -> Iterator[dict[str, str]]:
    """A temporary DATA_DIR with a migrated database; os.environ points at it for this process too."""
    data_dir = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))
    env = dict(os.environ)
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "LOOKUP_HASH_KEY"):
        env.pop(name, None)
    env.update(_keys())
    env.update(
        DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="config.settings",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    print(f"# DATA_DIR {data_dir}  database {env.get('DATABASE_URL') or 'SQLite in DATA_DIR'}", flush=True)
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(data_dir, ignore_errors=True)


def setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process used so far (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def daphne(env: dict[str, str]) -> Iterator[Server]:
    """Yield a daphne serving config.asgi on 127.0.0.1 (its output goes to DATA_DIR/daphne.log)."""
    port = free_port()
    log = (Path(env["DATA_DIR"]) / "daphne.log").open("wb")
    cmd = [PY, "-m", "config.daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start; see {log.name}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(condition, what: str, timeout: float, proc: subprocess.Popen | None = None, *,
             interval: float = 0.1) -> None:
    """Poll `condition()` until truthy, failing fast if `proc` (the process expected to make it true) exits.
    The timeout is a deadline for a loaded machine, not part of any measurement."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def load_note() -> str:
    """The machine's size and load, printed with figures measured on a machine that others share."""
    one, five, _ = os.getloadavg()
    return (f"{os.cpu_count()} cores, load average {one:.1f} (1 min) / {five:.1f} (5 min): the machine is shared "
            f"with other work, so figures move from run to run")
