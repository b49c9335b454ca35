"""`make run`'s pieces for real: bootstrap a fresh DATA_DIR, then `runall` starts web, worker and engine from the
Procfile."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.procs import free_port, port_open, wait_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def fresh_env(tmp_path: Path, **extra) -> dict:
    extra.setdefault("ENGINE_LISTEN_INTERFACES", "127.0.0.1:0")  # never collide with a real client's 6881
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY", "LOOKUP_HASH_KEY"}}
    env.update(DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1", **extra)
    return env


def test_bootstrap_then_runall_serves_and_stops_cleanly(tmp_path):
    env = fresh_env(tmp_path)
    first = subprocess.run([sys.executable, "manage.py", "bootstrap"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "password:" in first.stdout and "admin@example.com" in first.stdout
    second = subprocess.run([sys.executable, "manage.py", "bootstrap"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert "password:" not in second.stdout  # credentials are printed only once

    port = free_port()
    env.update(PORT=str(port))
    log = (tmp_path / "runall.log").open("wb")
    proc = subprocess.Popen([sys.executable, "manage.py", "runall"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(lambda: port_open(port), "runall's web", proc, tmp_path / "runall.log")
        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
        assert body == {"status": "ok"}
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10).read().decode()
        assert "csrfmiddlewaretoken" in login
        css = urllib.request.urlopen(f"http://127.0.0.1:{port}/static/css/flotilla.css", timeout=10)
        assert css.status == 200
        # The worker came up too: the django-q2 cluster announces itself once its workers run.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and b"Q Cluster" not in (tmp_path / "runall.log").read_bytes():
            time.sleep(0.5)
        assert b"Q Cluster" in (tmp_path / "runall.log").read_bytes()
        # And the engine: it logs once its libtorrent session is up.
        while time.monotonic() < deadline and b"engine started" not in (tmp_path / "runall.log").read_bytes():
            time.sleep(0.5)
        assert b"engine started" in (tmp_path / "runall.log").read_bytes()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    output = (tmp_path / "runall.log").read_text()
    assert code == 0, output
    assert "web" in output and "worker" in output
