"""Signed-link delivery through a real daphne: async streaming, ranges, zips, metering of aborted downloads."""

import io
import os
import time
import zipfile

import httpx
import pytest

from billing.models import UsageDay
from downloads.models import Status
from streaming import links, sending
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.procs import daphne, process_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BIG = os.urandom(3 * 1024 * 1024 + 17)
SMALL = os.urandom(5000)


@pytest.fixture
def server(tmp_path, settings):
    # The autouse fixture put DOWNLOADS_DIR at tmp_path/downloads: DATA_DIR=tmp_path gives daphne the same folder.
    assert tmp_path / "downloads" == settings.DOWNLOADS_DIR
    with daphne(process_env(tmp_path), tmp_path) as base_url:
        yield base_url


@pytest.fixture
def files(user):
    job = JobFactory(user=user, status=Status.COMPLETED, name="Album")
    rows = {}
    for rel, data in {"Album/big.flac": BIG, "Album/cd2/small.flac": SMALL}.items():
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows[rel] = JobFileFactory(job=job, path=rel, size_bytes=len(data), completed_bytes=len(data),
                                   mime_type="audio/flac")
    return job, rows


def delivered(user) -> int:
    return sum(UsageDay.objects.filter(user=user).values_list("bytes_delivered", flat=True))


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_file_full_range_and_head_over_daphne(server, user, files):
    _, rows = files
    url = server + links.file_link(user.pk, rows["Album/big.flac"])
    with httpx.Client(timeout=30) as client:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(BIG))
        assert response.content == BIG

        response = client.get(url, headers={"Range": "bytes=1000000-2000000"})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 1000000-2000000/{len(BIG)}"
        assert response.content == BIG[1_000_000:2_000_001]

        response = client.head(url + "?inline=1")
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-length"] == str(len(BIG))
        assert response.headers["content-disposition"].startswith("inline;")

        assert client.get(url, headers={"Range": f"bytes={len(BIG)}-"}).status_code == 416
        expected = len(BIG) + 1_000_001
        assert wait_for(lambda: delivered(user) == expected), delivered(user)


def test_zip_over_daphne(server, user, files):
    job, _ = files
    with httpx.Client(timeout=30) as client:
        response = client.get(server + links.zip_link(user.pk, job, "Album"))
        size = len(response.content)
        # Still connected: the server finishes the stream and meters it without a disconnect racing it.
        assert wait_for(lambda: delivered(user) == size), delivered(user)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == size
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["big.flac", "cd2/small.flac"]
    assert archive.read("big.flac") == BIG and archive.read("cd2/small.flac") == SMALL


def test_aborted_download_meters_only_what_was_sent(server, user, files):
    _, rows = files
    big = rows["Album/big.flac"]
    # A file far larger than any socket buffer, so the server cannot have sent it all when the client leaves.
    path = big.job.data_dir / big.path
    with path.open("r+b") as fh:
        fh.truncate(256 * 1024 * 1024)
    big.size_bytes = big.completed_bytes = 256 * 1024 * 1024
    big.save()
    url = server + links.file_link(user.pk, big)
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received >= 1024 * 1024:
                break
    assert wait_for(lambda: delivered(user) > 0), "the aborted delivery was never metered"
    # Counted once the server asks for the next chunk: the last one handed over may go uncounted.
    assert received - sending.CHUNK_SIZE <= delivered(user) < big.size_bytes
