"""Real processes for end-to-end tests: daphne and qcluster on the test database, plus small clients.

The subprocesses load the loopback backend (tests/fakes/loopback_backend.py) through
EXTRA_BACKEND_MODULES; the test process does not, so anything the backend does was done by them.
The test drives the worker by enqueueing tasks (`enqueue_sync`): the ORM broker's queue lives in the
shared test database.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests import procs
from tests.fakes.loopback_backend import LoopbackBackend

LOOPBACK_ENV = {
    "EXTRA_BACKEND_MODULES": "tests.fakes.loopback_backend",
    # Every loopback step is one progress event, so the test can count them (the check wants it positive).
    "PROGRESS_EVENT_INTERVAL": "0.001",
    "EVENT_RELAY_INTERVAL": "0.05",
}


@dataclass
class Stack:
    base_url: str
    loopback: LoopbackBackend  # reads the service state the subprocesses share (never registered here)
    data_dir: Path

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws/events/"

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Token {key}"}, timeout=30)


def _print_logs(log_dir: Path) -> None:
    """Shown by pytest only when the test failed: the subprocesses' own view of what happened."""
    for log in sorted(log_dir.glob("*.log")):
        text = log.read_text(errors="replace")
        print(f"----- {log.name} (last 4000 chars) -----\n{text[-4000:]}")


@pytest.fixture
def env(tmp_path) -> Iterator[dict[str, str]]:
    """The environment for an engine e2e's processes (procs.ENGINE_ENV); their logs are shown on failure."""
    try:
        yield procs.process_env(tmp_path, **procs.ENGINE_ENV)
    finally:
        _print_logs(tmp_path)


@contextlib.contextmanager
def worker_process(tmp_path: Path, **env: str) -> Iterator[None]:
    """A qcluster worker on the test database; its log is printed when the test fails."""
    try:
        with procs.qcluster(procs.process_env(tmp_path, **env), tmp_path):
            yield
    finally:
        _print_logs(tmp_path)


@pytest.fixture
def web(transactional_db, tmp_path) -> Iterator[Stack]:
    """Daphne only."""
    env = procs.process_env(tmp_path, **LOOPBACK_ENV)
    try:
        with procs.daphne(env, tmp_path) as base_url:
            yield Stack(base_url, LoopbackBackend(state_dir=tmp_path / "loopback"), tmp_path)
    finally:
        _print_logs(tmp_path)


@pytest.fixture
def stack(transactional_db, tmp_path) -> Iterator[Stack]:
    """Daphne and a qcluster worker, both with the loopback backend."""
    env = procs.process_env(tmp_path, **LOOPBACK_ENV)
    try:
        with procs.daphne(env, tmp_path) as base_url, procs.qcluster(env, tmp_path):
            yield Stack(base_url, LoopbackBackend(state_dir=tmp_path / "loopback"), tmp_path)
    finally:
        _print_logs(tmp_path)


def enqueue_sync() -> None:
    """Have the worker run one `downloads.tasks.sync` now (one loopback step for every running job)."""
    from django_q.tasks import async_task

    async_task("downloads.tasks.sync", group="e2e")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    """Poll until `condition()` is truthy; fail with `what` if it never is (a deadline, not a timing check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class EventSocket:
    """A real websocket client on /ws/events/ (sync `websockets`), authenticated by API key."""

    def __init__(self, stack: Stack, key: str | None, query: str = "") -> None:
        headers = {"Authorization": f"Token {key}"} if key else {}
        self._exit = contextlib.ExitStack()
        self.ws: ClientConnection = self._exit.enter_context(
            connect(stack.ws_url + query, additional_headers=headers, origin=stack.base_url, open_timeout=15)
        )
        self.received: list[dict] = []

    def recv(self, timeout: float = 30.0) -> dict:
        message = json.loads(self.ws.recv(timeout=timeout))
        self.received.append(message)
        return message

    def hello(self) -> dict:
        message = self.recv()
        assert message["type"] == "hello", message
        return message

    def until(self, predicate: Callable[[dict], bool], timeout: float = 30.0) -> list[dict]:
        """Receive until a message matches; returns every message received on the way (it included)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event; received {got}")
            try:
                got.append(self.recv(timeout=remaining))
            except TimeoutError:
                raise AssertionError(f"no matching event; received {got}") from None
            if predicate(got[-1]):
                return got

    def close(self) -> None:
        self._exit.close()
