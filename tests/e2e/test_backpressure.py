"""Backpressure through a real daphne (config/asgi_server.py): a client that stops reading a 128 MiB completed
file does not get the file buffered in daphne's memory; once it reads again the body is complete and exact; and
a client that goes away mid-download ends the response (the stream slot is given back, the file is closed)."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import socket
import time
from pathlib import Path

import httpx
import pytest

from billing.models import UsageDay
from downloads.models import Status
from streaming import stream as streams
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.e2e.conftest import _print_logs as print_logs
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MIB = 1 << 20
SIZE = 128 * MIB
GROWTH_LIMIT = 32 * MIB  # daphne's RSS growth allowed while the client does not read (unpatched: the whole file)
WINDOW = 5.0  # s the client holds still while daphne's memory is watched; unpatched daphne crosses the limit in ~1 s
KEY = "flt_e2e_backpressure" + "b" * 29


@pytest.fixture
def big_file(user):
    """A completed job with one 128 MiB file of seeded random bytes (written in 1 MiB blocks); returns the
    JobFile, its path and its SHA-256."""
    job = JobFactory(user=user, status=Status.COMPLETED, name="Big")
    path = job.data_dir / "Big" / "big.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng, digest = random.Random(13), hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(SIZE // MIB):
            block = rng.randbytes(MIB)
            digest.update(block)
            fh.write(block)
    jobfile = JobFileFactory(job=job, path="Big/big.bin", size_bytes=SIZE, completed_bytes=SIZE,
                             mime_type="application/octet-stream")
    return jobfile, path, digest.hexdigest()


@pytest.fixture
def server(tmp_path, settings):
    assert tmp_path / "downloads" == settings.DOWNLOADS_DIR  # DATA_DIR=tmp_path: daphne serves the same folder
    try:
        with procs.daphne(procs.process_env(tmp_path), tmp_path) as base_url:
            yield base_url, daphne_pid()
    finally:
        print_logs(tmp_path)  # shown by pytest only when the test failed


def daphne_pid() -> int:
    """The daphne this test process started (procs.daphne yields only its URL)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"daphne" in cmdline:
            found.append(int(entry.name))
    assert len(found) == 1, found
    return found[0]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def holds_open(pid: int, path: Path) -> bool:
    target = str(path.resolve())
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == target:
                return True
        except OSError:
            continue
    return False


def open_stream(base_url: str, path_and_query: str) -> tuple[socket.socket, dict[str, str], bytes]:
    """A raw HTTP/1.1 GET with a small receive buffer (the client's own window stays small); returns the socket,
    the response headers and the body bytes read with them."""
    port = int(base_url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status, *lines = head.decode("latin1").split("\r\n")
    assert status.startswith("HTTP/1.1 200"), head
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return sock, headers, body


def read_at_least(sock: socket.socket, body: bytes, count: int) -> bytes:
    while len(body) < count:
        chunk = sock.recv(65536)
        assert chunk, f"the body ended after {len(body)} bytes"
        body += chunk
    return body


def test_a_client_that_stops_reading_does_not_fill_daphnes_memory(server, user, big_file):
    base_url, pid = server
    jobfile, path, sha = big_file
    url = streams.stream_url(user.pk, jobfile)
    # Warm up the code path (imports, the first thread of the pool), then take the baseline.
    warm, _, warm_body = open_stream(base_url, url)
    read_at_least(warm, warm_body, MIB)
    warm.close()
    wait_for(lambda: not holds_open(pid, path), "the warm-up response ended", 20)
    baseline = rss(pid)

    sock, headers, body = open_stream(base_url, url)
    try:
        assert int(headers["content-length"]) == SIZE
        body = read_at_least(sock, body, 300 * 1024)
        # The client holds still. The deadline is the observation: unpatched daphne reads the whole file into its
        # buffer within about a second, so it crosses the limit well inside the window.
        peak = baseline
        deadline = time.monotonic() + WINDOW
        while time.monotonic() < deadline:
            peak = max(peak, rss(pid))
            assert peak - baseline < GROWTH_LIMIT, (
                f"daphne grew by {(peak - baseline) / MIB:.0f} MiB while the client read nothing")
            time.sleep(0.05)
        print(f"daphne RSS: baseline {baseline / MIB:.0f} MiB, peak growth {(peak - baseline) / MIB:.1f} MiB")

        digest = hashlib.sha256(body)
        received = len(body)
        while chunk := sock.recv(1 << 20):
            digest.update(chunk)
            received += len(chunk)
    finally:
        sock.close()
    assert received == SIZE
    assert digest.hexdigest() == sha
    wait_for(lambda: not holds_open(pid, path), "daphne closed the file after the body", 20)


def streams_open(base_url: str, jobfile) -> int:
    """The file's open streams, as its stats endpoint counts them (the caller made an API key KEY)."""
    response = httpx.get(f"{base_url}/api/v1/stream/{jobfile.job_id}/{jobfile.pk}/stats/",
                         headers={"Authorization": f"Token {KEY}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["active_streams"]


def test_a_client_that_goes_away_mid_download_ends_the_response(server, user, big_file, tmp_path):
    base_url, pid = server
    jobfile, path, _ = big_file
    ApiKeyFactory(user=user, raw=KEY)
    active_streams = functools.partial(streams_open, base_url, jobfile)

    sock, _, body = open_stream(base_url, streams.stream_url(user.pk, jobfile))
    read_at_least(sock, body, MIB)
    assert active_streams() == 1 and holds_open(pid, path)
    sock.close()  # unread bytes in its buffer: the kernel resets the connection

    wait_for(lambda: active_streams() == 0, "the stream slot was given back", 20)
    wait_for(lambda: not holds_open(pid, path), "daphne closed the file", 20)
    delivered = wait_for(lambda: sum(UsageDay.objects.filter(user=user).values_list("bytes_delivered", flat=True)),
                         "the cut delivery was metered", 20)
    assert MIB <= delivered < SIZE // 2, delivered  # what was written before the client left, not the whole file
    # The app ended on the disconnect itself, not by daphne's kill of an app still running 10 s after it.
    assert not any("took too long to shut down" in log.read_text(errors="replace")
                   for log in tmp_path.glob("daphne-*.log"))


SEND_TIMEOUT = 2.0  # s; the server under test gets this through the environment


@pytest.fixture
def server_with_send_timeout(tmp_path, settings):
    assert tmp_path / "downloads" == settings.DOWNLOADS_DIR
    try:
        with procs.daphne(procs.process_env(tmp_path, SEND_TIMEOUT=str(SEND_TIMEOUT)), tmp_path) as base_url:
            yield base_url, daphne_pid()
    finally:
        print_logs(tmp_path)


def test_a_client_that_stays_connected_but_stops_reading_is_cut_after_send_timeout(
        server_with_send_timeout, user, big_file):
    base_url, pid = server_with_send_timeout
    jobfile, path, _ = big_file
    ApiKeyFactory(user=user, raw=KEY)
    active_streams = functools.partial(streams_open, base_url, jobfile)

    sock, _, body = open_stream(base_url, streams.stream_url(user.pk, jobfile))
    try:
        body = read_at_least(sock, body, 300 * 1024)
        stopped = time.monotonic()
        assert active_streams() == 1 and holds_open(pid, path)
        # The client reads nothing more but stays connected: the server gives up after SEND_TIMEOUT.
        wait_for(lambda: active_streams() == 0, "the stalled stream's slot was given back", 30)
        cut_after = time.monotonic() - stopped
        wait_for(lambda: not holds_open(pid, path), "daphne closed the file", 20)
        # The server closed the socket: what it had sent still reads, then the stream ends (EOF or reset)
        # well short of the file.
        received = len(body)
        sock.settimeout(30)
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    print(f"stalled client cut {cut_after:.1f} s after it stopped reading, {received / MIB:.1f} MiB received")
    assert cut_after >= SEND_TIMEOUT
    assert received < SIZE // 2


def test_a_client_that_reads_slowly_is_not_cut(server_with_send_timeout, user, big_file):
    """SEND_TIMEOUT is between two successful writes, not for the whole body: a client taking 8 KiB every 0.1 s
    (far slower than the socket buffers fill) keeps its stream for three times SEND_TIMEOUT."""
    base_url, pid = server_with_send_timeout
    jobfile, path, _ = big_file
    sock, _, body = open_stream(base_url, streams.stream_url(user.pk, jobfile))
    try:
        received = len(read_at_least(sock, body, 300 * 1024))
        end = time.monotonic() + 3 * SEND_TIMEOUT
        while time.monotonic() < end:
            chunk = sock.recv(8192)
            assert chunk, f"the server ended the body of a reading client after {received} bytes"
            received += len(chunk)
            time.sleep(0.1)  # the client's pace, not a wait for something to happen
        assert holds_open(pid, path)
        received = len(read_at_least(sock, b"x" * received, received + 4 * MIB))  # and it still gets more
    finally:
        sock.close()
    print(f"slow client: {received / MIB:.1f} MiB over {3 * SEND_TIMEOUT:.0f} s, still served")
