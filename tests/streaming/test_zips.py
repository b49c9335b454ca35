"""Zips that resume: exact layout, ZIP64, Range/If-Range/HEAD on /d/z/, CRCs cached without re-reading."""

import io
import os
import subprocess
import zipfile
import zlib

import pytest
from django.test import Client
from django.urls import reverse

from downloads.models import Status
from streaming import links, zips
from streaming.models import FileChecksum
from streaming.ziplayout import Layout, Member, clean_name
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db

CONTENTS = {
    "Show/S01/e1.mkv": os.urandom(600_000),
    "Show/S01/e2.mkv": os.urandom(3_000),
    "Show/Été notes.txt": "bonjour, ça va ?".encode(),
    "Show/empty.bin": b"",
    "other.bin": b"x" * 10,
}


@pytest.fixture
def show(user):
    job = JobFactory(user=user, status=Status.COMPLETED, name="My Show")
    for rel, data in CONTENTS.items():
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
        JobFileFactory(job=job, path=rel, size_bytes=len(data), completed_bytes=len(data))
    return job


def body(response):
    return b"".join(response.streaming_content)


def fetch(url, **headers):
    response = Client().get(url, headers=headers)
    return response, body(response) if response.streaming else response.content


def whole(show, folder="Show"):
    return fetch(links.zip_link(show.user.pk, show, folder))


def check_archive(data, expected):
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert {i.filename: archive.read(i) for i in archive.infolist()} == expected
    return archive


# --- the layout, pure -------------------------------------------------------------------------------------


def memory_zip(layout, contents):
    return b"".join(layout.iter_range(0, layout.size, data=lambda i, lo, hi: iter([contents[i][lo:hi]]),
                                      crc=lambda i: zlib.crc32(contents[i])))


def test_layout_is_a_valid_zip_with_utf8_names_and_fixed_times():
    contents = [b"abc", b"", os.urandom(1000)]
    members = [Member("a.txt", 3, 1_700_000_000), Member("dossier/Été.txt", 0, 1_700_000_000),
               Member("b.bin", 1000, 0)]
    layout = Layout(members)
    data = memory_zip(layout, contents)
    assert len(data) == layout.size
    archive = check_archive(data, {m.name: c for m, c in zip(members, contents)})
    infos = archive.infolist()
    assert infos[1].flag_bits & 0x800 and not infos[0].flag_bits & 0x800
    assert infos[0].date_time == (2023, 11, 14, 22, 13, 20)
    assert infos[2].date_time == (1980, 1, 1, 0, 0, 0)  # before 1980: clamped, not an error
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert data == memory_zip(Layout(members), contents)  # deterministic


def test_zip64_records_when_sizes_offsets_or_counts_pass_the_limits(tmp_path):
    contents = [os.urandom(300), os.urandom(50), b"z" * 700]
    members = [Member(f"f{i}", len(c), 1_700_000_000) for i, c in enumerate(contents)]
    layout = Layout(members, zip64_at=256, zip64_entries=2)  # everything above 256 bytes is "4 GiB"
    data = memory_zip(layout, contents)
    assert b"PK\x06\x06" in data[layout.cd_end:] and b"PK\x06\x07" in data[layout.cd_end:]
    check_archive(data, {m.name: c for m, c in zip(members, contents)})
    assert all(data[s:s + 4] == b"PK\x03\x04" for s in layout.local_starts)
    (tmp_path / "z64.zip").write_bytes(data)  # Info-ZIP reads the ZIP64 extras and end records too
    result = subprocess.run(["unzip", "-t", str(tmp_path / "z64.zip")], capture_output=True, text=True)
    assert result.returncode == 0 and "No errors detected" in result.stdout, result.stdout + result.stderr


def test_more_than_65535_entries_use_zip64_end_records():
    members = [Member(f"d/{i}", 0, 1_700_000_000) for i in range(65_537)]
    layout = Layout(members)
    data = memory_zip(layout, [b""] * len(members))
    assert data[layout.cd_end:layout.cd_end + 4] == b"PK\x06\x06"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert len(archive.infolist()) == 65_537 and archive.infolist()[-1].filename == "d/65536"


def test_every_range_of_the_layout_equals_the_same_slice_of_the_whole():
    contents = [os.urandom(70), b"", os.urandom(5)]
    members = [Member(f"n{i}", len(c), 1_700_000_000) for i, c in enumerate(contents)]
    layout = Layout(members)
    full = memory_zip(layout, contents)
    for start in range(0, layout.size, 7):
        for end in (start + 1, start + 13, layout.size):
            end = min(end, layout.size)
            got = b"".join(layout.iter_range(start, end, data=lambda i, lo, hi: iter([contents[i][lo:hi]]),
                                             crc=lambda i: zlib.crc32(contents[i])))
            assert got == full[start:end], (start, end)


def test_clean_name_drops_traversal_and_control_characters():
    assert clean_name("/../a/./b\\c/\x01d") == "a/b_c/_d"
    assert clean_name("../..") == ""


# --- over HTTP --------------------------------------------------------------------------------------------


def test_zip_headers_and_contents(show):
    response, data = whole(show)
    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert int(response["Content-Length"]) == len(data)
    assert response["ETag"].startswith('"z') and response["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    check_archive(data, {k[len("Show/"):]: v for k, v in CONTENTS.items() if k.startswith("Show/")})


def test_unzip_tests_the_archive(show, tmp_path):
    _, data = whole(show, "")
    (tmp_path / "a.zip").write_bytes(data)
    result = subprocess.run(["unzip", "-t", str(tmp_path / "a.zip")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def test_head_matches_get_and_reads_nothing(show, monkeypatch):
    url = links.zip_link(show.user.pk, show, "Show")
    monkeypatch.setattr(zips.ZipArchive, "_open", lambda *a: pytest.fail("HEAD opened a file"))
    head = Client().head(url, headers={"Range": "bytes=10-"})
    assert head.status_code == 206 and head["Content-Range"].startswith("bytes 10-")
    monkeypatch.undo()
    response, data = whole(show)
    assert head["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
    assert head["ETag"] == response["ETag"]


def test_cut_download_resumes_with_range_and_if_range(show):
    url = links.zip_link(show.user.pk, show, "Show")
    first, full = fetch(url)
    for cut in (1, 29, 100, 300_001, len(full) - 300, len(full) - 1):
        FileChecksum.objects.all().delete()  # a resume served by another process, nothing cached
        response, rest = fetch(url, Range=f"bytes={cut}-", If_Range=first["ETag"])
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes {cut}-{len(full) - 1}/{len(full)}"
        assert full[:cut] + rest == full, cut


def test_if_range_with_another_validator_sends_the_whole_zip(show):
    url = links.zip_link(show.user.pk, show, "Show")
    _, full = fetch(url)
    response, data = fetch(url, Range="bytes=100-", If_Range='"z-stale"')
    assert response.status_code == 200 and data == full
    response, data = fetch(url, Range="bytes=100-", If_Range="Tue, 14 Nov 2023 22:13:20 GMT")
    assert response.status_code == 206 and data == full[100:]


def test_etag_changes_when_a_file_changes(show):
    first, _ = whole(show)
    path = show.data_dir / "other.bin"
    path.unlink()
    second, _ = whole(show)
    assert second["ETag"] == first["ETag"]  # other.bin is outside the Show folder
    (show.data_dir / "Show/S01/e2.mkv").write_bytes(b"new")
    third, data = whole(show)
    assert third["ETag"] != first["ETag"] and int(third["Content-Length"]) == len(data)


def test_multipart_ranges_and_416(show):
    url = links.zip_link(show.user.pk, show, "Show")
    _, full = fetch(url)
    response, data = fetch(url, Range="bytes=0-9,-20")
    assert response.status_code == 206
    assert response["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert int(response["Content-Length"]) == len(data)
    assert full[:10] in data and full[-20:] in data
    response, _ = fetch(url, Range=f"bytes={len(full)}-")
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{len(full)}"
    assert response.json()["code"] == "range_not_satisfiable"


def test_crcs_are_learned_once_and_reused_for_ranges(show, monkeypatch):
    url = links.zip_link(show.user.pk, show, "Show")
    _, full = fetch(url)
    assert FileChecksum.objects.count() == 4
    e1 = FileChecksum.objects.get(jobfile__path="Show/S01/e1.mkv")
    assert e1.crc32 == zlib.crc32(CONTENTS["Show/S01/e1.mkv"])
    # The central directory alone: every CRC comes from the cache, no file is opened.
    monkeypatch.setattr(zips.ZipArchive, "_open", lambda *a: pytest.fail("a file was read"))
    start = zipfile.ZipFile(io.BytesIO(full)).start_dir
    response, tail = fetch(url, Range=f"bytes={start - 16}-")  # the last descriptor and everything after it
    assert response.status_code == 206 and tail == full[start - 16:]


def test_changed_file_makes_a_stale_crc_be_learned_again(show):
    url = links.zip_link(show.user.pk, show, "Show")
    fetch(url)
    path = show.data_dir / "Show/S01/e2.mkv"
    path.write_bytes(b"changed!")
    _, data = fetch(url)
    check_archive(data, {**{k[len("Show/"):]: v for k, v in CONTENTS.items() if k.startswith("Show/")},
                         "S01/e2.mkv": b"changed!"})
    assert FileChecksum.objects.get(jobfile__path="Show/S01/e2.mkv").crc32 == zlib.crc32(b"changed!")


def test_bad_token_is_404(show):
    assert Client().get(reverse("delivery:zip", args=["nope", "x.zip"]), headers={"Range": "bytes=0-"}
                        ).status_code == 404
