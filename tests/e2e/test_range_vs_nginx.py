"""Range, If-Range and HEAD side by side: Flotilla's signed-link delivery (a real daphne) against a real nginx
serving the very same files. nginx is the reference (docs/architecture.md, "File delivery").

For every case both servers must give the same status, Content-Range and Content-Length, and the same body
bytes (multipart bodies with each side's boundary replaced by one placeholder: Flotilla's boundary has nginx's
length, so even the multipart Content-Length is equal). A 416's body is each server's own error page (nginx's
HTML, our `{code, detail}` JSON), so for a 416 only the status and Content-Range are compared. The expected
status of each case is written down too, so a change in nginx itself shows up here rather than passing silently.

nginx runs with `max_ranges` set to Flotilla's cap (ranges.MAX_RANGES); everything else is nginx's default.
The nginx binary is a test dependency (`make debs-test`): without it this test fails, it never skips.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloads.models import Status
from streaming import ranges, sending
from streaming.links import file_link
from tests import procs
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SIZE = 3 * sending.CHUNK_SIZE + 123  # parts and slices cross the server's read chunks
DATA = random.Random(10).randbytes(SIZE)
FILES = {"data.bin": DATA, "empty.bin": b""}
MIME = "application/octet-stream"  # what nginx's `types` below gives .bin, and what the JobFile rows say

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr info;
events {{ worker_connections 64; }}
http {{
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    max_ranges {max_ranges};
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def nginx_binary() -> str:
    """nginx lives in /usr/sbin, which is not on a non-root user's PATH."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("nginx is missing: it is the reference for Range; `make debs-test` installs Debian's nginx")
    return found


@contextlib.contextmanager
def nginx(root: Path, workdir: Path) -> Iterator[str]:
    """A foreground nginx (no daemon, no master) with its own prefix, config, pid and log, serving `root`."""
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = procs.free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=root, max_ranges=ranges.MAX_RANGES))
    cmd = [nginx_binary(), "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr"]
    log_path = workdir / "nginx.log"
    with procs.running(cmd, dict(os.environ), log_path) as proc:
        procs.wait_ready(lambda: procs.port_open(port), f"nginx on port {port}", proc, log_path)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def servers(tmp_path, user) -> Iterator[dict[str, dict[str, str]]]:
    """{"nginx": {name: url}, "flotilla": {name: url}} for the same files on disk."""
    job = JobFactory(user=user, status=Status.COMPLETED, name="Ranges")
    links = {}
    for name, data in FILES.items():
        path = job.data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        jobfile = JobFileFactory(job=job, path=name, size_bytes=len(data), completed_bytes=len(data), mime_type=MIME)
        links[name] = file_link(user.pk, jobfile)
    with nginx(job.data_dir, tmp_path) as nginx_url, procs.daphne(procs.process_env(tmp_path), tmp_path) as web_url:
        yield {"nginx": {name: f"{nginx_url}/{name}" for name in FILES},
               "flotilla": {name: web_url + link for name, link in links.items()}}


def _ranges(count: int) -> str:
    return "bytes=" + ",".join(f"{i * 7}-{i * 7 + 2}" for i in range(count))


LAST = SIZE - 1
# (method, file, Range, If-Range, nginx's status). In If-Range, {etag} is the server's own ETag and {lm…} its
# Last-Modified in RFC 1123 / RFC 850 / asctime form, or a second earlier.
CASES = [
    ("GET", "data.bin", None, None, 200),
    # the header values of the issue: malformed or unsatisfiable
    ("GET", "data.bin", "bytes=500-100", None, 416),
    ("GET", "data.bin", "bytes=abc", None, 416),
    ("GET", "data.bin", "bytes=-", None, 416),
    ("GET", "data.bin", "bytes=100 - 500", None, 206),  # nginx skips the spaces
    ("GET", "data.bin", "bytes=0-10,", None, 416),
    ("GET", "data.bin", "bytes=,0-10", None, 416),
    ("GET", "data.bin", "bytes=1-2-3", None, 416),
    ("GET", "data.bin", f"bytes={SIZE}-", None, 416),
    ("GET", "data.bin", "bytes=-0", None, 416),
    ("GET", "data.bin", "bytes=99999999999999999999-", None, 416),
    # not a byte range request: ignored
    ("GET", "data.bin", "items=0-5", None, 200),
    ("GET", "data.bin", "bytes=", None, 200),
    ("GET", "data.bin", "bytes =0-5", None, 200),
    # single ranges
    ("GET", "data.bin", "bytes=0-0", None, 206),
    ("GET", "data.bin", "BYTES=0-99", None, 206),
    ("GET", "data.bin", "bytes=262100-524300", None, 206),
    ("GET", "data.bin", "bytes=700000-", None, 206),
    ("GET", "data.bin", f"bytes={LAST}-99999999", None, 206),
    ("GET", "data.bin", "bytes=-500", None, 206),
    ("GET", "data.bin", f"bytes=-{SIZE * 10}", None, 206),  # a suffix larger than the file
    ("GET", "data.bin", "bytes=5-2,0-1", None, 206),  # the unsatisfiable one is dropped
    # several ranges
    ("GET", "data.bin", "bytes=0-1,5-6", None, 206),
    ("GET", "data.bin", "bytes=500-599,0-99", None, 206),  # kept in the order asked
    ("GET", "data.bin", "bytes=0-5,3-8", None, 206),  # overlapping: not merged
    ("GET", "data.bin", "bytes=0-300000,400000-", None, 206),  # big parts, streamed
    ("GET", "data.bin", "bytes=0-,0-0", None, 200),  # more than the whole file in total
    ("GET", "data.bin", _ranges(ranges.MAX_RANGES), None, 206),
    ("GET", "data.bin", _ranges(ranges.MAX_RANGES + 1), None, 200),  # max_ranges
    # If-Range
    ("GET", "data.bin", "bytes=0-9", "{etag}", 206),
    ("GET", "data.bin", "bytes=0-9", '"not-the-tag"', 200),
    ("GET", "data.bin", "bytes=0-9", "W/{etag}", 200),  # a weak tag never matches
    ("GET", "data.bin", "bytes=0-9", "{lm}", 206),
    ("GET", "data.bin", "bytes=0-9", "{lm850}", 206),
    ("GET", "data.bin", "bytes=0-9", "{lmasc}", 206),
    ("GET", "data.bin", "bytes=0-9", "{lm_earlier}", 200),
    ("GET", "data.bin", "bytes=0-9", "not a date", 200),
    ("GET", "data.bin", "bytes=0-1,5-6", "{etag}", 206),
    ("GET", "data.bin", f"bytes={SIZE}-", "{etag}", 416),
    ("GET", "data.bin", "bytes=abc", '"not-the-tag"', 200),  # no match: Range is not even read
    # HEAD describes what the GET would get
    ("HEAD", "data.bin", None, None, 200),
    ("HEAD", "data.bin", "bytes=0-9", None, 206),
    ("HEAD", "data.bin", "bytes=0-1,5-6", None, 206),
    ("HEAD", "data.bin", "bytes=0-9", "{lm_earlier}", 200),
    ("HEAD", "data.bin", f"bytes={SIZE}-", None, 416),
    # an empty file
    ("GET", "empty.bin", None, None, 200),
    ("GET", "empty.bin", "bytes=0-", None, 200),
    ("GET", "empty.bin", "bytes=-5", None, 200),
    ("GET", "empty.bin", "bytes=1-", None, 416),
    ("HEAD", "empty.bin", "bytes=0-", None, 200),
]


def _validators(client: httpx.Client, url: str) -> dict[str, str]:
    head = client.head(url)
    modified = email.utils.parsedate_to_datetime(head.headers["last-modified"]).timestamp()
    return {
        "etag": head.headers["etag"],
        "lm": head.headers["last-modified"],
        "lm850": time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(modified)),
        "lmasc": time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(modified)),
        "lm_earlier": email.utils.formatdate(modified - 1, usegmt=True),
    }


def _answer(client: httpx.Client, method: str, url: str, range_header: str | None,
            if_range: str | None) -> dict[str, object]:
    """What is compared: status, Content-Range, Content-Length and the body with its boundary normalised."""
    headers = {}
    if range_header is not None:
        headers["Range"] = range_header
    if if_range is not None:
        headers["If-Range"] = if_range
    response = client.request(method, url, headers=headers)
    content_type = response.headers.get("content-type", "")
    body = response.content
    if content_type.startswith("multipart/byteranges; boundary="):
        boundary = content_type.split("boundary=", 1)[1]
        body = body.replace(boundary.encode(), b"BOUNDARY")
        content_type = "multipart/byteranges; boundary=BOUNDARY"
    answer: dict[str, object] = {"status": response.status_code,
                                 "content-range": response.headers.get("content-range")}
    if response.status_code != 416:  # the error page itself differs by design
        answer.update({"content-length": response.headers.get("content-length"), "content-type": content_type,
                       "body": body})
    return answer


def _compare(servers: dict[str, dict[str, str]], cases: list[tuple]) -> list[str]:
    problems = []
    with httpx.Client(timeout=60) as client:
        validators = {side: _validators(client, urls["data.bin"]) for side, urls in servers.items()}
        for method, name, range_header, if_range, expected in cases:
            answers = {}
            for side, urls in servers.items():
                value = if_range.format(**validators[side]) if if_range else if_range
                answers[side] = _answer(client, method, urls[name], range_header, value)
            label = f"{method} {name} Range={range_header!r:.60} If-Range={if_range!r}"
            if expected is not None and answers["nginx"]["status"] != expected:
                problems.append(f"{label}: nginx answered {answers['nginx']['status']}, the table says {expected}")
            differences = [f"{key} {_short(answers['flotilla'].get(key))} here, {_short(answers['nginx'].get(key))}"
                           f" from nginx" for key in _KEYS if answers["flotilla"].get(key) != answers["nginx"].get(key)]
            if differences:
                problems.append(f"{label}: " + "; ".join(differences))
    return problems


_KEYS = ("status", "content-range", "content-length", "content-type", "body")


def _short(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes {value[:40]!r}…>"
    return repr(value)


def test_range_if_range_and_head_match_nginx(servers):
    problems = _compare(servers, CASES)
    assert not problems, "\n".join(problems)


def test_random_range_headers_match_nginx(servers):
    """A seeded fuzz of the range-set grammar's edges: what the table does not think of."""
    rng = random.Random(20260310)
    tokens = ["0", "1", "7", "00", "262143", "262144", str(LAST), str(SIZE), "99999999", "-", "-", ",", ",", " ",
              "\t", "a", "+", "9223372036854775807", "9223372036854775808"]
    cases = []
    for _ in range(150):
        value = rng.choice(["bytes=", "bytes=", "Bytes=", "bytes= "]) + "".join(
            rng.choice(tokens) for _ in range(rng.randint(1, 8)))
        # Leading/trailing whitespace never reaches either server's parser.
        cases.append(("GET", rng.choice(["data.bin", "data.bin", "empty.bin"]), value.strip(" \t"), None, None))
    problems = _compare(servers, cases)
    assert not problems, "\n".join(problems)


def test_a_missing_nginx_fails_rather_than_skips(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(pytest.fail.Exception, match="nginx is missing"):
        nginx_binary()


def test_nginx_binary_is_found_even_off_path(monkeypatch):
    """`make debs-test` checks /usr/sbin/nginx; a non-root PATH lacks /usr/sbin, the test must still find it."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    path = nginx_binary()
    assert subprocess.run([path, "-v"], capture_output=True, check=True).stderr.startswith(b"nginx version:")
