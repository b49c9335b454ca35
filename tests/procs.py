"""Starting Flotilla's real processes (daphne, qcluster) against the test database, on 127.0.0.1.

Used by the e2e and browser tests. The subprocesses share the test process's keys and database, so a
row written by one is readable by the other; the test must use `transactional_db` (committed data).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port that was free a moment ago. Another process (a second copy of the suite, an outgoing connection)
    may take it before the caller binds it: prefer `listening_socket` where the server can adopt a socket."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A socket already listening on a free 127.0.0.1 port, for a child process to adopt (daphne's `--fd`):
    bound here and never released in between, so no other process on the machine can take the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield s


def database_url() -> str:
    """A DATABASE_URL for the database the test process is using right now (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


# Paths that default to a place under DATA_DIR: a value inherited from the test process (settings export
# PROMETHEUS_MULTIPROC_DIR for prometheus-client; a developer's shell may set the others) would make every
# subprocess of the run, and a second run in the same tree, share one directory. A caller may still pass one.
DATA_DIR_PATHS = ("PROMETHEUS_MULTIPROC_DIR", "SEEDR_TEMP_DIR", "STATIC_ROOT")


def process_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DATA_DIR_PATHS}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url(),
        DATA_DIR=str(data_dir),
        SECRET_KEY=settings.SECRET_KEY,
        FIELD_ENCRYPTION_KEY=",".join(settings.FIELD_ENCRYPTION_KEY),
        LOOKUP_HASH_KEY=settings.LOOKUP_HASH_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_ready(ready: Callable[[], object], what: str, proc: subprocess.Popen, log_path: Path,
               timeout: float = 60.0) -> None:
    """Poll `ready()` until truthy, failing fast with the process's log if it exits first. An exception from
    `ready()` means "not up yet". The timeout is a deadline for a loaded machine, not a speed check."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.returncode}\n{_tail(log_path)}")
        try:
            if ready():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready in {timeout}s ({last!r})\n{_tail(log_path)}")


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log_path: Path,
            pass_fds: tuple[int, ...] = ()) -> Iterator[subprocess.Popen]:
    """Run a process for the duration of the block; its output goes to `log_path` (shown on failure)."""
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            pass_fds=pass_fds)
    try:
        yield proc
    finally:
        # SIGTERM to the main process only: qcluster stops its own children in order, while a SIGTERM to
        # the whole group at once leaves its sentinel waiting for them until the timeout.
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        kill_group(proc)  # whatever is still left in the group
        log.close()


def kill_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGKILL every process of `proc`'s group (it leads a session of its own) and return once none lives.

    `proc.wait()` covers the leader only; its children die a little later, on their own schedule. Until the
    kernel has closed a dead qcluster pusher's sockets, Redis still counts its BLPOP as waiting and hands the
    next task pushed to that queue to it: the task is lost (the next cluster's readiness probe, in CI)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while group_members(proc.pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes of group {proc.pid} outlived SIGKILL: {group_members(proc.pid)}")
        time.sleep(0.01)


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in group `pgid` that still run (zombies have closed their files: not counted)."""
    members = []
    for entry in Path("/proc").iterdir():
        stat = process_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat and stat[0] != "Z" and stat[1] == pgid:
            members.append(int(entry.name))
    return members


def process_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a process from /proc, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]  # the name in parentheses may hold spaces
    return state, int(group)


def _tail(log_path: Path, chars: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-chars:] if log_path.exists() else ""


@contextlib.contextmanager
def daphne(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """Yield the base URL of a daphne serving config.asgi on 127.0.0.1.

    Daphne adopts a socket this process already listens on (`--fd`): with a port number instead, a second
    copy of the suite could bind it between our choosing and daphne's binding. The kernel accepts connections
    on that socket before daphne serves, so readiness is an answered request, not an open port."""
    with listening_socket() as sock:
        port, fd = sock.getsockname()[1], sock.fileno()
        cmd = [sys.executable, "-m", "config.daphne", "--fd", str(fd), "config.asgi:application"]
        log_path = log_dir / f"daphne-{port}.log"
        base_url = f"http://127.0.0.1:{port}"
        with running(cmd, env, log_path, pass_fds=(fd,)) as proc:
            wait_ready(lambda: http_ok(f"{base_url}/healthz"), f"daphne on port {port}", proc, log_path)
            yield base_url


def task_ran(task_id: str) -> bool:
    from django_q.models import Task

    return Task.objects.filter(id=task_id).exists()


@contextlib.contextmanager
def qcluster(env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen]:
    """Yield a django-q2 cluster that is working (it has already run a task from the test database)."""
    from django_q.tasks import async_task

    cmd = [sys.executable, "manage.py", "qcluster"]
    log_path = log_dir / "qcluster.log"
    with running(cmd, env, log_path) as proc:
        # A task round trip proves the pusher, a worker and the monitor are up, whatever the log level hides.
        task_id = async_task("math.floor", 1.5, group="procs.readiness")
        wait_ready(lambda: task_ran(task_id), "qcluster running a task", proc, log_path)
        yield proc


# The engine on loopback only: no DHT/LSD/UPnP/NAT-PMP, an ephemeral port, several 127.0.0.1 peers allowed,
# fast polling and resume saves, and a short heartbeat timeout so a dead engine's jobs move on quickly.
ENGINE_ENV = {
    "ENGINE_LISTEN_INTERFACES": "127.0.0.1:0",
    "ENGINE_DHT": "false",
    "ENGINE_LSD": "false",
    "ENGINE_UPNP": "false",
    "ENGINE_NATPMP": "false",
    "ENGINE_LIBTORRENT_SETTINGS": '{"allow_multiple_connections_per_ip": true, "min_reconnect_time": 1}',
    "ENGINE_POLL_INTERVAL": "0.2",
    "ENGINE_RESUME_SAVE_INTERVAL": "1",
    "ENGINE_HEARTBEAT_TIMEOUT": "4",
}


@contextlib.contextmanager
def engine(env: dict[str, str], log_dir: Path, name: str = "engine-e2e") -> Iterator[subprocess.Popen]:
    """Yield a running `manage.py runengine --name <name>` (it has written its first heartbeat)."""
    from downloads.models import ProcessHeartbeat

    ProcessHeartbeat.objects.filter(name=name).delete()  # a previous run's row must not count as ready
    runs = len(list(log_dir.glob(f"engine-{name}*.log")))
    log_path = log_dir / f"engine-{name}{'-' + str(runs) if runs else ''}.log"  # a restart keeps the first log
    with running([sys.executable, "manage.py", "runengine", "--name", name], env, log_path) as proc:
        wait_ready(lambda: ProcessHeartbeat.objects.filter(name=name).exists(), f"engine {name}'s heartbeat",
                   proc, log_path)
        yield proc
