import io
import logging
import mimetypes
import os
import time
import zipfile
from types import SimpleNamespace
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date
from rest_framework.test import APIClient

from billing.models import UsageDay
from downloads.models import Status
from streaming import links, sending
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db

CONTENTS = {
    "Show/S01/e1.mkv": os.urandom(600_000),  # more than two 256 KiB chunks
    "Show/S01/e2.mkv": os.urandom(3_000),
    "Show/Été notes.txt": "bonjour, ça va ?".encode(),
    "Show/page.html": b"<script>alert(1)</script>",
    "cover.jpg": os.urandom(100),
    "empty.bin": b"",
}


def make_job(user, contents=CONTENTS, **job_fields):
    job = JobFactory(user=user, status=Status.COMPLETED, name="My Show", **job_fields)
    files = {}
    for rel, data in contents.items():
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[rel] = JobFileFactory(
            job=job, path=rel, size_bytes=len(data), completed_bytes=len(data),
            mime_type=mimetypes.guess_type(rel)[0] or "application/octet-stream",
        )
    return SimpleNamespace(job=job, files=files, user=user)


@pytest.fixture
def show(user):
    return make_job(user)


def link(show, rel):
    return links.file_link(show.user.pk, show.files[rel])


def body(response):
    return b"".join(response.streaming_content)


def delivered(user):
    return sum(UsageDay.objects.filter(user=user).values_list("bytes_delivered", flat=True))


# --- the files API ----------------------------------------------------------------------------------------


class TestFilesApi:
    def test_owner_gets_files_tree_and_links(self, api_client, show):
        response = api_client.get(f"/api/v1/jobs/{show.job.pk}/files/")
        assert response.status_code == 200
        data = response.json()
        assert data["job"] == show.job.pk
        assert data["zip_url"].startswith("http://testserver/d/z/") and data["zip_url"].endswith("/My%20Show.zip")
        by_path = {f["path"]: f for f in data["files"]}
        assert set(by_path) == set(CONTENTS)
        e1 = by_path["Show/S01/e1.mkv"]
        assert e1 | {"download_url": None} == {
            "id": show.files["Show/S01/e1.mkv"].pk, "path": "Show/S01/e1.mkv", "size_bytes": 600_000,
            "completed_bytes": 600_000, "mime_type": "video/x-matroska", "is_complete": True, "download_url": None,
            "play_url": f"/d/play/{show.job.pk}/{show.files['Show/S01/e1.mkv'].pk}/",
        }
        assert by_path["cover.jpg"]["play_url"] is None, "the player is offered for video and audio only"
        assert e1["download_url"].startswith("http://testserver/d/f/") and e1["download_url"].endswith("/e1.mkv")

        tree = data["tree"]
        assert [(n["type"], n["name"]) for n in tree] == [("dir", "Show"), ("file", "cover.jpg"), ("file", "empty.bin")]
        show_dir = tree[0]
        assert show_dir["path"] == "Show"
        assert show_dir["size_bytes"] == sum(len(v) for k, v in CONTENTS.items() if k.startswith("Show/"))
        assert [n["name"] for n in show_dir["children"]] == ["S01", "page.html", "Été notes.txt"]
        season = show_dir["children"][0]
        assert season["path"] == "Show/S01" and season["size_bytes"] == 603_000
        assert season["zip_url"].endswith("/S01.zip")
        assert [c["download_url"] for c in season["children"]] == [
            by_path["Show/S01/e1.mkv"]["download_url"], by_path["Show/S01/e2.mkv"]["download_url"],
        ]

    def test_following_the_api_link_downloads_the_file(self, api_client, show):
        data = api_client.get(f"/api/v1/jobs/{show.job.pk}/files/").json()
        url = next(f["download_url"] for f in data["files"] if f["path"] == "Show/S01/e1.mkv")
        response = Client().get(url)
        assert response.status_code == 200
        assert body(response) == CONTENTS["Show/S01/e1.mkv"]

    def test_another_users_job_is_404(self, other_client, show):
        response = other_client.get(f"/api/v1/jobs/{show.job.pk}/files/")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_anonymous_is_refused(self, show):
        response = APIClient().get(f"/api/v1/jobs/{show.job.pk}/files/")
        assert response.status_code in (401, 403)

    def test_api_key_auth(self, show):
        ApiKeyFactory(user=show.user, raw="flt_delivery000000000000")
        response = APIClient().get(f"/api/v1/jobs/{show.job.pk}/files/", HTTP_X_API_KEY="flt_delivery000000000000")
        assert response.status_code == 200 and len(response.json()["files"]) == len(CONTENTS)

    def test_deleted_data_has_no_links(self, api_client, show):
        show.job.data_deleted_at = timezone.now()
        show.job.save()
        data = api_client.get(f"/api/v1/jobs/{show.job.pk}/files/").json()
        assert data["zip_url"] is None
        assert all(f["download_url"] is None and f["play_url"] is None for f in data["files"])
        assert data["tree"][0]["zip_url"] is None and data["tree"][1]["download_url"] is None

    def test_query_count_does_not_grow_with_files(self, api_client, user, django_assert_num_queries):
        small = make_job(user, {"a.bin": b"a"})
        big = make_job(user, {f"d{i}/f{i}.bin": b"x" for i in range(30)})
        with django_assert_num_queries(2):
            api_client.get(f"/api/v1/jobs/{small.job.pk}/files/")
        with django_assert_num_queries(2):
            api_client.get(f"/api/v1/jobs/{big.job.pk}/files/")


# --- single-file delivery ---------------------------------------------------------------------------------


class TestFileDownload:
    def test_full_download_and_headers(self, show):
        path = show.job.data_dir / "Show/S01/e1.mkv"
        st = path.stat()
        response = Client().get(link(show, "Show/S01/e1.mkv"))
        assert response.status_code == 200
        assert response.streaming is True
        assert response["Content-Length"] == "600000"
        assert response["Accept-Ranges"] == "bytes"
        assert response["ETag"] == f'"{st.st_size}-{st.st_mtime_ns}"'
        assert response["Last-Modified"] == http_date(st.st_mtime)
        assert response["Content-Type"] == "video/x-matroska"
        assert response["Content-Disposition"] == "attachment; filename=\"e1.mkv\"; filename*=UTF-8''e1.mkv"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "Content-Range" not in response
        assert body(response) == CONTENTS["Show/S01/e1.mkv"]

    def test_works_without_a_session_and_with_any_cosmetic_name(self, show):
        token = links.file_token(show.user.pk, show.files["cover.jpg"].pk)
        response = Client().get(reverse("delivery:file", args=[token, "whatever.name"]))
        assert response.status_code == 200 and body(response) == CONTENTS["cover.jpg"]

    def test_unicode_name_is_encoded(self, show):
        response = Client().get(link(show, "Show/Été notes.txt"))
        assert response["Content-Disposition"] == (
            "attachment; filename=\"_t_ notes.txt\"; filename*=UTF-8''%C3%89t%C3%A9%20notes.txt"
        )
        assert body(response) == CONTENTS["Show/Été notes.txt"]

    def test_inline_for_media_but_never_for_html(self, show):
        response = Client().get(link(show, "Show/S01/e2.mkv") + "?inline=1")
        assert response["Content-Disposition"].startswith("inline;")
        response = Client().get(link(show, "Show/page.html") + "?inline=1")
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["X-Content-Type-Options"] == "nosniff"

    def test_empty_file(self, show):
        response = Client().get(link(show, "empty.bin"))
        assert response.status_code == 200 and response["Content-Length"] == "0" and body(response) == b""
        # nginx: a range from 0 selects nothing in an empty file and means "all of it"; any other start is 416.
        response = Client().get(link(show, "empty.bin"), headers={"Range": "bytes=0-"})
        assert response.status_code == 200 and response["Content-Length"] == "0" and body(response) == b""
        response = Client().get(link(show, "empty.bin"), headers={"Range": "bytes=1-"})
        assert response.status_code == 416 and response["Content-Range"] == "bytes */0"

    @pytest.mark.parametrize(
        ("header", "start", "end"),
        [
            ("bytes=0-0", 0, 0),
            ("bytes=100-199", 100, 199),
            ("bytes=262100-524300", 262100, 524300),  # across chunk boundaries
            ("bytes=599990-", 599990, 599999),
            ("bytes=-10", 599990, 599999),
            ("bytes=599000-700000", 599000, 599999),
            ("bytes=700000-800000, 5-9", 5, 9),  # only one of the ranges is satisfiable
            ("bytes=100 - 199", 100, 199),  # nginx accepts spaces around the numbers
        ],
    )
    def test_range_returns_the_exact_slice(self, show, header, start, end):
        response = Client().get(link(show, "Show/S01/e1.mkv"), headers={"Range": header})
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes {start}-{end}/600000"
        assert response["Content-Length"] == str(end - start + 1)
        assert body(response) == CONTENTS["Show/S01/e1.mkv"][start : end + 1]

    @pytest.mark.parametrize("header", ["items=0-5", "bytes=", "bytes =0-5", "bytes=0-2999,0-0"])
    def test_not_a_byte_range_or_more_than_the_file_serves_everything(self, show, header):
        response = Client().get(link(show, "Show/S01/e2.mkv"), headers={"Range": header})
        assert response.status_code == 200 and "Content-Range" not in response
        assert body(response) == CONTENTS["Show/S01/e2.mkv"]

    @pytest.mark.parametrize("header", ["bytes=500-100", "bytes=abc", "bytes=-", "bytes=0-10,", "bytes=,0-10",
                                        "bytes=1-2-3"])
    def test_malformed_range_is_416(self, show, header):
        response = Client().get(link(show, "Show/S01/e2.mkv"), headers={"Range": header})
        assert response.status_code == 416 and response["Content-Range"] == "bytes */3000"
        assert response.json()["code"] == "range_not_satisfiable"

    def test_several_ranges_are_multipart_byteranges(self, show):
        data = CONTENTS["Show/S01/e1.mkv"]
        response = Client().get(link(show, "Show/S01/e1.mkv"), headers={"Range": "bytes=0-1,599990-,262000-262300"})
        assert response.status_code == 206 and "Content-Range" not in response
        content_type, _, boundary = response["Content-Type"].partition("; boundary=")
        assert content_type == "multipart/byteranges" and len(boundary) == 20
        raw = body(response)
        assert response["Content-Length"] == str(len(raw))
        part = "\r\n--{}\r\nContent-Type: video/x-matroska\r\nContent-Range: bytes {}-{}/600000\r\n\r\n"
        expected = b"".join(
            part.format(boundary, a, b).encode() + data[a : b + 1]
            for a, b in [(0, 1), (599990, 599999), (262000, 262300)]
        ) + f"\r\n--{boundary}--\r\n".encode()
        assert raw == expected
        assert delivered(show.user) == len(raw)  # the parts' headers went out too
        other = Client().get(link(show, "Show/S01/e1.mkv"), headers={"Range": "bytes=0-1,5-6"})
        assert other["Content-Type"] != response["Content-Type"]  # a fresh boundary each time
        body(other)

    def test_multipart_streams_in_bounded_chunks(self, show):
        big = show.files["Show/S01/e1.mkv"]
        path = show.job.data_dir / big.path
        with path.open("r+b") as fh:
            fh.truncate(64 * 1024 * 1024)  # sparse: cheap on disk, far larger than any chunk
        big.size_bytes = 64 * 1024 * 1024
        big.save()
        header = "bytes=0-,0-0"  # > the file in total: nginx serves it whole
        assert Client().get(link(show, big.path), headers={"Range": header}).status_code == 200
        header = "bytes=0-33554431,33554432-67108862"
        response = Client().get(link(show, big.path), headers={"Range": header})
        sizes = [len(chunk) for chunk in response.streaming_content]
        assert response.status_code == 206 and sum(sizes) == int(response["Content-Length"])
        assert max(sizes) < 2 * sending.CHUNK_SIZE  # never a whole part, let alone the file, in memory

    def test_unsatisfiable_range_is_416(self, show):
        response = Client().get(link(show, "Show/S01/e2.mkv"), headers={"Range": "bytes=3000-"})
        assert response.status_code == 416
        assert response["Content-Range"] == "bytes */3000"
        assert response.json()["code"] == "range_not_satisfiable"
        assert delivered(show.user) == 0

    def test_if_range(self, show):
        url = link(show, "Show/S01/e2.mkv")
        full = Client().get(url)
        etag, last_modified = full["ETag"], full["Last-Modified"]
        body(full)
        for validator, status in [(etag, 206), (last_modified, 206), ('"3000-1"', 200), (f"W/{etag}", 200),
                                  (http_date(time.time() + 3600), 200)]:
            response = Client().get(url, headers={"Range": "bytes=0-9", "If-Range": validator})
            assert response.status_code == status, validator
            expected = CONTENTS["Show/S01/e2.mkv"][:10] if status == 206 else CONTENTS["Show/S01/e2.mkv"]
            assert body(response) == expected

    def test_rewritten_file_changes_the_etag_and_if_range_then_sends_all(self, show):
        url = link(show, "Show/S01/e2.mkv")
        old = Client().get(url)
        body(old)
        path = show.job.data_dir / "Show/S01/e2.mkv"
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000))
        response = Client().get(url, headers={"Range": "bytes=0-9", "If-Range": old["ETag"]})
        assert response.status_code == 200 and response["ETag"] != old["ETag"]
        body(response)

    def test_head(self, show):
        response = Client().head(link(show, "Show/S01/e1.mkv"))
        assert response.status_code == 200 and response["Content-Length"] == "600000"
        assert response["Accept-Ranges"] == "bytes" and response["ETag"]
        assert response.content == b""
        # nginx answers a ranged HEAD with the headers the GET would get (RFC 9110 lets a server ignore it).
        response = Client().head(link(show, "Show/S01/e1.mkv"), headers={"Range": "bytes=0-9"})
        assert response.status_code == 206 and response["Content-Length"] == "10"
        assert response["Content-Range"] == "bytes 0-9/600000" and response.content == b""
        response = Client().head(link(show, "Show/S01/e1.mkv"), headers={"Range": "bytes=0-9,20-29"})
        assert response.status_code == 206 and response["Content-Type"].startswith("multipart/byteranges;")
        response = Client().head(link(show, "Show/S01/e1.mkv"), headers={"Range": "bytes=600000-"})
        assert response.status_code == 416 and response["Content-Range"] == "bytes */600000"
        assert delivered(show.user) == 0

    def test_file_replaced_after_the_headers_is_not_sent(self, show):
        response = Client().get(link(show, "Show/S01/e2.mkv"))
        (show.job.data_dir / "Show/S01/e2.mkv").write_bytes(b"something else entirely")
        with pytest.raises(sending.FileChanged):
            body(response)
        assert delivered(show.user) == 0

    def test_other_methods_are_405(self, show):
        assert Client().post(link(show, "cover.jpg")).status_code == 405

    def test_file_missing_on_disk_is_404(self, show):
        (show.job.data_dir / "cover.jpg").unlink()
        response = Client().get(link(show, "cover.jpg"))
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    def test_deleted_data_is_410(self, show):
        url = link(show, "cover.jpg")
        show.job.data_deleted_at = timezone.now()
        show.job.save()
        response = Client().get(url)
        assert response.status_code == 410 and response.json()["code"] == "data_deleted"


# --- the link is the credential ---------------------------------------------------------------------------


class TestLinks:
    def test_expired_link_is_410(self, show):
        past = time.time() - settings.SIGNED_URL_MAX_AGE - 5
        with mock.patch("django.core.signing.time.time", return_value=past):
            token = links.file_token(show.user.pk, show.files["cover.jpg"].pk)
        response = Client().get(reverse("delivery:file", args=[token, "cover.jpg"]))
        assert response.status_code == 410
        assert response.json()["code"] == "link_expired"

    def test_max_age_comes_from_settings(self, show, settings):
        url = link(show, "cover.jpg")
        settings.SIGNED_URL_MAX_AGE = -1
        assert Client().get(url).status_code == 410

    def test_tampered_links_are_404(self, show, caplog):
        token = links.file_token(show.user.pk, show.files["cover.jpg"].pk)
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        zip_token = links.zip_token(show.user.pk, show.job.pk, "")
        with caplog.at_level(logging.INFO):
            for bad in [flipped, zip_token, "nonsense", token.replace(":", ";", 1)]:
                response = Client().get(reverse("delivery:file", args=[bad, "cover.jpg"]))
                assert response.status_code == 404, bad
                assert response.json()["code"] == "not_found"
        assert not any(flipped in record.getMessage() for record in caplog.records)  # no token in logs

    def test_link_signed_with_another_key_is_404(self, show, settings):
        url = link(show, "cover.jpg")
        settings.SECRET_KEY = "another-secret-key-another-secret-key-0123456789"
        assert Client().get(url).status_code == 404

    def test_deactivated_user_link_is_404(self, show):
        url = link(show, "cover.jpg")
        show.user.is_active = False
        show.user.save()
        assert Client().get(url).status_code == 404

    def test_link_dies_when_the_job_is_no_longer_the_users(self, show, other_user):
        url = link(show, "cover.jpg")
        show.job.user = other_user
        show.job.save()
        assert Client().get(url).status_code == 404

    def test_link_bound_to_user_cannot_reach_another_users_file(self, show, other_user):
        # A (validly signed) link for a file id naming the wrong user is refused.
        token = links.file_token(other_user.pk, show.files["cover.jpg"].pk)
        assert Client().get(reverse("delivery:file", args=[token, "cover.jpg"])).status_code == 404

    def test_symlink_out_of_the_job_folder_is_404(self, show):
        (show.job.data_dir / "Show/passwd").symlink_to("/etc/passwd")
        (show.job.data_dir / "etc").symlink_to("/etc", target_is_directory=True)
        for rel in ["Show/passwd", "etc/passwd"]:
            jobfile = JobFileFactory(job=show.job, path=rel, size_bytes=10, completed_bytes=10)
            response = Client().get(links.file_link(show.user.pk, jobfile))
            assert response.status_code == 404, rel
            assert b"root" not in response.content

    def test_traversal_path_is_404(self, show):
        jobfile = JobFileFactory(job=show.job, path="../../../../etc/passwd", size_bytes=10)
        assert Client().get(links.file_link(show.user.pk, jobfile)).status_code == 404


# --- quota, metering, logging -----------------------------------------------------------------------------


class TestMetering:
    def test_delivered_bytes_are_metered(self, show):
        body(Client().get(link(show, "Show/S01/e1.mkv")))
        assert delivered(show.user) == 600_000
        body(Client().get(link(show, "Show/S01/e1.mkv"), headers={"Range": "bytes=0-99"}))
        assert delivered(show.user) == 600_100
        assert UsageDay.objects.get(user=show.user).bytes_downloaded == 0

    def test_an_interrupted_download_meters_what_was_sent(self, show, monkeypatch):
        response = Client().get(link(show, "Show/S01/e1.mkv"))
        chunks = iter(response.streaming_content)
        next(chunks)
        next(chunks)  # the server asking for a second chunk means the first one went out
        # The client goes away: the server closes the response. Its request_finished signal would close the
        # test's database connection (and roll the test back), so that part is kept out of the way.
        monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
        response.close()
        assert delivered(show.user) == sending.CHUNK_SIZE

    def test_quota_refusal(self, show):
        PlanAssignmentFactory(user=show.user, plan=PlanFactory(monthly_transfer_bytes=100))
        response = Client().get(link(show, "Show/S01/e2.mkv"))
        assert response.status_code == 403
        assert response.json() == {"code": "quota_exceeded", "detail": response.json()["detail"],
                                   "limit": "monthly_transfer_bytes"}
        # A small range still fits the allowance; once it is used up, even that is refused.
        response = Client().get(link(show, "Show/S01/e2.mkv"), headers={"Range": "bytes=0-59"})
        assert response.status_code == 206 and len(body(response)) == 60
        response = Client().get(link(show, "Show/S01/e2.mkv"), headers={"Range": "bytes=0-59"})
        assert response.status_code == 403
        assert delivered(show.user) == 60

    def test_one_log_line_per_delivery_without_token(self, show, caplog):
        url = link(show, "Show/S01/e2.mkv")
        token = url.split("/")[3]
        with caplog.at_level(logging.INFO, logger="streaming.sending"):
            body(Client().get(url, headers={"Range": "bytes=10-19"}, HTTP_X_REQUEST_ID="req-123"))
        records = [r for r in caplog.records if r.name == "streaming.sending"]
        assert len(records) == 1
        record = records[0]
        assert (record.user, record.job, record.file, record.range, record.bytes, record.status) == (
            show.user.pk, show.job.pk, show.files["Show/S01/e2.mkv"].pk, "10-19", 10, 206)
        assert record.request_id == "req-123"  # the stream ends after the middleware: the id is carried over
        assert token not in str(vars(record))


# --- zips -------------------------------------------------------------------------------------------------


def open_zip(response):
    data = body(response)
    assert len(data) == int(response["Content-Length"])
    return zipfile.ZipFile(io.BytesIO(data))


class TestZip:
    def test_whole_job_zip(self, show):
        response = Client().get(links.zip_link(show.user.pk, show.job))
        assert response.status_code == 200
        assert response.streaming is True
        assert response["Content-Type"] == "application/zip"
        assert response["Content-Disposition"] == "attachment; filename=\"My Show.zip\"; filename*=UTF-8''My%20Show.zip"
        archive = open_zip(response)
        assert sorted(archive.namelist()) == sorted(CONTENTS)
        for name, data in CONTENTS.items():
            assert archive.read(name) == data
        assert archive.testzip() is None
        assert delivered(show.user) == int(response["Content-Length"])

    def test_folder_zip_contains_only_that_folder(self, show):
        response = Client().get(links.zip_link(show.user.pk, show.job, "Show/S01"))
        assert response["Content-Disposition"].startswith('attachment; filename="S01.zip"')
        archive = open_zip(response)
        assert sorted(archive.namelist()) == ["e1.mkv", "e2.mkv"]
        assert archive.read("e1.mkv") == CONTENTS["Show/S01/e1.mkv"]

    def test_folder_prefix_is_not_a_name_prefix(self, user):
        job = make_job(user, {"Show/a.bin": b"a", "Show 2/b.bin": b"b", "show/c.bin": b"c"})
        archive = open_zip(Client().get(links.zip_link(user.pk, job.job, "Show")))
        assert archive.namelist() == ["a.bin"]

    def test_zip_skips_symlinks_and_missing_files(self, show):
        (show.job.data_dir / "Show/passwd").symlink_to("/etc/passwd")
        (show.job.data_dir / "Show/inner-link.txt").symlink_to(show.job.data_dir / "cover.jpg")
        JobFileFactory(job=show.job, path="Show/passwd")
        JobFileFactory(job=show.job, path="Show/inner-link.txt")
        JobFileFactory(job=show.job, path="Show/not-yet.bin")
        archive = open_zip(Client().get(links.zip_link(show.user.pk, show.job, "Show")))
        assert sorted(archive.namelist()) == ["S01/e1.mkv", "S01/e2.mkv", "page.html", "Été notes.txt"]

    def test_zip_of_folder_with_nothing_on_disk_is_404(self, show):
        response = Client().get(links.zip_link(show.user.pk, show.job, "Nope"))
        assert response.status_code == 404

    def test_zip_head(self, show):
        response = Client().head(links.zip_link(show.user.pk, show.job, "Show/S01"))
        assert response.status_code == 200 and int(response["Content-Length"]) > 603_000
        assert delivered(show.user) == 0

    def test_zip_link_refusals(self, show, other_user):
        token = links.zip_token(other_user.pk, show.job.pk, "")
        assert Client().get(reverse("delivery:zip", args=[token, "x.zip"])).status_code == 404
        token = links.zip_token(show.user.pk, show.job.pk, "../..")
        assert Client().get(reverse("delivery:zip", args=[token, "x.zip"])).status_code == 404
        file_token = links.file_token(show.user.pk, show.files["cover.jpg"].pk)
        assert Client().get(reverse("delivery:zip", args=[file_token, "x.zip"])).status_code == 404
        past = time.time() - settings.SIGNED_URL_MAX_AGE - 5
        with mock.patch("django.core.signing.time.time", return_value=past):
            token = links.zip_token(show.user.pk, show.job.pk, "")
        assert Client().get(reverse("delivery:zip", args=[token, "x.zip"])).status_code == 410

    def test_zip_quota_refusal(self, show):
        PlanAssignmentFactory(user=show.user, plan=PlanFactory(monthly_transfer_bytes=1000))
        response = Client().get(links.zip_link(show.user.pk, show.job))
        assert response.status_code == 403 and response.json()["code"] == "quota_exceeded"


# --- ASGI -------------------------------------------------------------------------------------------------


class TestAsgi:
    """Under ASGI the body must be an async iterator, or Django reads it all into memory before sending."""

    def test_file_range_over_asgi(self, show):
        url = link(show, "Show/S01/e1.mkv")

        async def fetch():
            response = await AsyncClient().get(url, headers={"Range": "bytes=1000-599999"})
            assert response.is_async is True
            return response, b"".join([chunk async for chunk in response.streaming_content])

        response, data = async_to_sync(fetch)()
        assert response.status_code == 206
        assert data == CONTENTS["Show/S01/e1.mkv"][1000:]
        assert delivered(show.user) == 599_000

    def test_zip_over_asgi(self, show):
        url = links.zip_link(show.user.pk, show.job, "Show/S01")

        async def fetch():
            response = await AsyncClient().get(url)
            assert response.is_async is True
            return b"".join([chunk async for chunk in response.streaming_content])

        archive = zipfile.ZipFile(io.BytesIO(async_to_sync(fetch)()))
        assert archive.read("e1.mkv") == CONTENTS["Show/S01/e1.mkv"]


def test_coalesce_regroups_without_losing_bytes():
    pieces = [b"a" * 3, b"b" * 10, b"", b"c" * 2, b"d" * 7]
    out = list(sending.coalesce(pieces, size=8))
    assert b"".join(out) == b"".join(pieces)
    assert [len(chunk) for chunk in out] == [13, 9]
    assert list(sending.coalesce([], size=8)) == []
