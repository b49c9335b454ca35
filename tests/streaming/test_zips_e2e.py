"""Through a real daphne: a cut zip download resumed with Range (and with `curl -C -`) equals the whole zip and
extracts to the original bytes; a share link's zip resumes the same way and is metered on the owner."""

import io
import os
import subprocess
import sys
import zipfile

import httpx
import pytest

from billing.models import UsageDay
from downloads.models import Status
from streaming import links, sending, shares
from streaming.models import FileChecksum, Share
from tests import procs
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.e2e.conftest import wait_for
from tests.procs import daphne, process_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTENTS = {
    "Season/ep1.mkv": os.urandom(6 * 1024 * 1024 + 11),
    "Season/extras/Été.txt": "ça marche".encode(),
    "Season/ep2.mkv": os.urandom(2 * 1024 * 1024),
    "Season/empty.nfo": b"",
}
EXPECTED = {k[len("Season/"):]: v for k, v in CONTENTS.items()}


@pytest.fixture
def server(tmp_path, settings):
    assert tmp_path / "downloads" == settings.DOWNLOADS_DIR
    with daphne(process_env(tmp_path), tmp_path) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory):
    """The share pages render the layout: with DEBUG off its static files need collectstatic's manifest."""
    data_dir = tmp_path_factory.mktemp("static-data")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=procs.ROOT,
                   env=process_env(data_dir), check=True)
    return data_dir / "static"


@pytest.fixture
def page_server(tmp_path, collected_static):
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    with daphne(process_env(tmp_path), tmp_path) as base_url:
        yield base_url


@pytest.fixture
def season(user):
    job = JobFactory(user=user, status=Status.COMPLETED, name="Season")
    for rel, data in CONTENTS.items():
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        JobFileFactory(job=job, path=rel, size_bytes=len(data), completed_bytes=len(data))
    return job


def cut_download(client, url, keep):
    """Start a download and drop the connection after `keep` bytes, as a broken network would."""
    received = bytearray()
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        headers = response.headers
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= keep:
                break
    return bytes(received[:keep]), headers


def extracts_to_originals(data, tmp_path):
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert {name: archive.read(name) for name in archive.namelist()} == EXPECTED
    (tmp_path / "check.zip").write_bytes(data)  # and Info-ZIP's own check (`make test` installs unzip)
    result = subprocess.run(["unzip", "-t", str(tmp_path / "check.zip")], capture_output=True, text=True)
    assert result.returncode == 0 and "No errors detected" in result.stdout, result.stdout


def test_cut_zip_download_resumes_with_range(server, user, season, tmp_path):
    url = server + links.zip_link(user.pk, season, "Season")
    with httpx.Client(timeout=60) as client:
        head = client.head(url)
        size = int(head.headers["content-length"])
        assert head.headers["accept-ranges"] == "bytes"
        # Cut inside ep1 (the first file): a new request, in another process, has no CRC of it yet.
        part, headers = cut_download(client, url, 3 * 1024 * 1024 + 5)
        assert headers["etag"] == head.headers["etag"] and int(headers["content-length"]) == size
        response = client.get(url, headers={"Range": f"bytes={len(part)}-", "If-Range": headers["etag"]})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {len(part)}-{size - 1}/{size}"
        resumed = part + response.content
        whole = client.get(url).content
    assert len(resumed) == size and resumed == whole
    extracts_to_originals(resumed, tmp_path)
    # The server saves CRCs once a body has ended, a moment after the client has it all.
    wait_for(lambda: FileChecksum.objects.filter(jobfile__job=season).count() == len(CONTENTS), "CRCs saved", 20)


def test_curl_continues_a_cut_zip(server, user, season, tmp_path):
    url = server + links.zip_link(user.pk, season, "Season")
    with httpx.Client(timeout=60) as client:
        part, headers = cut_download(client, url, 7 * 1024 * 1024)  # inside ep2, after ep1 went through whole
    target = tmp_path / "Season.zip"
    target.write_bytes(part)
    result = subprocess.run(["curl", "-sS", "-f", "-C", "-", "-o", str(target), url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = target.read_bytes()
    assert len(data) == int(headers["content-length"])
    extracts_to_originals(data, tmp_path)


def test_share_link_zip_resumes_and_meters_the_owner(page_server, user, season, tmp_path):
    server = page_server
    share = shares.create_share(user, job_id=season.pk, max_downloads=1)
    url = server + shares.page_links(share).zip_url
    with httpx.Client(timeout=60) as client:
        page = client.get(server + shares.share_url(share))
        assert page.status_code == 200 and "ep1.mkv" in page.text
        part, headers = cut_download(client, url, 1024 * 1024)
        rest = client.get(url, headers={"Range": f"bytes={len(part)}-", "If-Range": headers["etag"]})
        assert rest.status_code == 206
        data = part + rest.content
        gone = client.get(url)  # the one download allowed was the cut one
        assert gone.status_code == 410 and "as many times as it allows" in gone.text
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read("Season/ep1.mkv") == CONTENTS["Season/ep1.mkv"]
    assert Share.objects.get(pk=share.pk).download_count == 1

    def metered():
        return sum(UsageDay.objects.filter(user=user).values_list("bytes_delivered", flat=True))

    # Both requests end up metered on the owner and on the link alike (the cut one for at least what the
    # client kept, less the chunk the server had not yet counted).
    wait_for(lambda: Share.objects.get(pk=share.pk).bytes_sent == metered() >= len(data) - sending.CHUNK_SIZE,
             "the link and the owner metered alike", 20)
