"""Share links: service, API (own objects only, {code, detail}), public pages and downloads, metering, audit."""

import datetime as dt
import io
import os
import zipfile
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditLog
from billing.models import UsageDay
from downloads.models import Status
from streaming import shares
from streaming.models import Share
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory, JobFileFactory

pytestmark = pytest.mark.django_db

CONTENTS = {"Film/film.mkv": os.urandom(400_000), "Film/subs/en.srt": b"1\n00:00:01,000 --> 00:00:02,000\nHi\n"}


@pytest.fixture
def film(user):
    job = JobFactory(user=user, status=Status.COMPLETED, name="Film")
    rows = {}
    for rel, data in CONTENTS.items():
        path = job.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows[rel] = JobFileFactory(job=job, path=rel, size_bytes=len(data), completed_bytes=len(data))
    job.rows = rows
    return job


def delivered(user):
    return sum(UsageDay.objects.filter(user=user).values_list("bytes_delivered", flat=True))


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def later(**delta):
    return mock.patch("django.utils.timezone.now", return_value=timezone.now() + dt.timedelta(**delta))


def page_links(share):
    return shares.page_links(share)


# --- the API ----------------------------------------------------------------------------------------------


class TestApi:
    def test_create_list_and_revoke_with_audit(self, api_client, user, film):
        response = api_client.post("/api/v1/shares/", {"job": film.pk, "max_downloads": 3}, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()
        assert data["state"] == "active" and data["file"] is None and data["max_downloads"] == 3
        assert data["url"].startswith("http://testserver/s/")
        share = Share.objects.get()
        assert share.token not in share.token_hash and data["url"].endswith(f"/s/{share.token}/")
        # Expiry defaults to 7 days (SHARE_MAX_DAYS's default).
        assert abs((share.expires_at - timezone.now()) - dt.timedelta(days=7)) < dt.timedelta(minutes=1)
        audit = AuditLog.objects.get(action="share.create")
        assert audit.actor == user and audit.target_id == str(share.pk) and share.token not in str(audit.metadata)

        listed = api_client.get(f"/api/v1/shares/?job={film.pk}").json()
        assert [s["id"] for s in listed] == [share.pk]

        response = api_client.post(f"/api/v1/shares/{share.pk}/revoke/")
        assert response.status_code == 200 and response.json()["state"] == "revoked"
        assert response.json()["url"] is None  # a dead link is not handed out again
        api_client.post(f"/api/v1/shares/{share.pk}/revoke/")
        assert AuditLog.objects.filter(action="share.revoke").count() == 1

    def test_share_one_file(self, api_client, film):
        file_id = film.rows["Film/subs/en.srt"].pk
        data = api_client.post("/api/v1/shares/", {"job": film.pk, "file": file_id}, format="json").json()
        assert data["file"] == file_id and data["file_path"] == "Film/subs/en.srt"

    def test_another_users_job_file_or_share_is_404(self, api_client, other_client, film, other_user):
        response = other_client.post("/api/v1/shares/", {"job": film.pk}, format="json")
        assert response.status_code == 404 and response.json() == {"code": "not_found", "detail": "Not found."}
        theirs = JobFactory(user=other_user)
        response = api_client.post("/api/v1/shares/", {"job": film.pk, "file": JobFileFactory(job=theirs).pk},
                                   format="json")
        assert response.status_code == 404
        share_id = api_client.post("/api/v1/shares/", {"job": film.pk}, format="json").json()["id"]
        assert other_client.post(f"/api/v1/shares/{share_id}/revoke/").status_code == 404
        assert other_client.get("/api/v1/shares/").json() == []
        assert Share.objects.get().revoked_at is None

    @pytest.mark.parametrize("payload, code", [
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expiry_in_past"),
        ({"max_downloads": 0}, "invalid"),
        ({"expires_at": "soon"}, "invalid"),
        ({"job": "x"}, "invalid"),
        ({"job": 2**70}, "invalid"),
    ])
    def test_bad_input_is_400_with_code(self, api_client, film, payload, code):
        response = api_client.post("/api/v1/shares/", {"job": film.pk, **payload}, format="json")
        assert response.status_code == 400 and response.json()["code"] == code

    def test_expiry_is_capped_by_share_max_days(self, api_client, film, settings):
        settings.SHARE_MAX_DAYS = 2
        too_far = (timezone.now() + dt.timedelta(days=3)).isoformat()
        response = api_client.post("/api/v1/shares/", {"job": film.pk, "expires_at": too_far}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "expiry_too_far"
        response = api_client.post("/api/v1/shares/", {"job": film.pk}, format="json")  # default: capped too
        assert response.status_code == 201
        assert Share.objects.get().expires_at <= timezone.now() + dt.timedelta(days=2)

    def test_anonymous_and_bad_filter(self, api_client):
        assert APIClient().get("/api/v1/shares/").status_code in (401, 403)
        response = api_client.get("/api/v1/shares/?job=abc")
        assert response.status_code == 400 and response.json()["code"] == "invalid"

    def test_list_query_count_does_not_grow(self, api_client, user, film, django_assert_max_num_queries):
        for _ in range(5):
            shares.create_share(user, job_id=film.pk, file_id=film.rows["Film/film.mkv"].pk)
        with django_assert_max_num_queries(4):
            assert len(api_client.get("/api/v1/shares/").json()) == 5


# --- the visitor ------------------------------------------------------------------------------------------


class TestVisitor:
    def test_page_lists_files_and_downloads_count_on_owner_and_link(self, user, film):
        share = shares.create_share(user, job_id=film.pk)
        page = Client().get(f"/s/{share.token}/")
        assert page.status_code == 200 and page["Referrer-Policy"] == "no-referrer"
        text = page.content.decode()
        assert "film.mkv" in text and "en.srt" in text and "Download everything" in text
        links = page_links(share)
        movie_url = next(url for f, url in links.files if f.path == "Film/film.mkv")
        response = Client().get(movie_url)
        assert response.status_code == 200 and body(response) == CONTENTS["Film/film.mkv"]
        share.refresh_from_db()
        assert share.download_count == 1 and share.bytes_sent == 400_000
        assert delivered(user) == 400_000

        zipped = Client().get(links.zip_url)
        archive = zipfile.ZipFile(io.BytesIO(body(zipped)))
        assert archive.read("Film/subs/en.srt") == CONTENTS["Film/subs/en.srt"]
        share.refresh_from_db()
        assert share.download_count == 2 and delivered(user) == 400_000 + int(zipped["Content-Length"])

    def test_range_works_and_a_resume_is_not_a_new_download(self, user, film):
        share = shares.create_share(user, job_id=film.pk, max_downloads=1)
        url = page_links(share).zip_url
        first = Client().get(url, headers={"Range": "bytes=0-999"})
        assert first.status_code == 206
        full_size = int(first["Content-Range"].rsplit("/", 1)[1])
        rest = Client().get(url, headers={"Range": "bytes=1000-", "If-Range": first["ETag"]})
        assert rest.status_code == 206
        archive = zipfile.ZipFile(io.BytesIO(body(first) + body(rest)))
        assert archive.read("Film/film.mkv") == CONTENTS["Film/film.mkv"]
        share.refresh_from_db()
        assert share.download_count == 1 and share.bytes_sent == full_size
        # The limit is reached: a new download is refused, the page says so.
        again = Client().get(url)
        assert again.status_code == 410 and b"as many times as it allows" in again.content
        assert Client().get(f"/s/{share.token}/").status_code == 410
        # Resumes are bounded by (max_downloads + 1) x the size: no endless fetching through ranges.
        resumed = Client().get(url, headers={"Range": "bytes=1-"})
        assert resumed.status_code == 206 and len(body(resumed)) == full_size - 1
        assert Client().get(url, headers={"Range": "bytes=1-"}).status_code == 410

    def test_head_does_not_count(self, user, film):
        share = shares.create_share(user, job_id=film.pk, max_downloads=1)
        assert Client().head(page_links(share).zip_url).status_code == 200
        share.refresh_from_db()
        assert share.download_count == 0

    def test_expiry_follows_the_clock(self, user, film):
        share = shares.create_share(user, job_id=film.pk, expires_at=timezone.now() + dt.timedelta(hours=1))
        url = page_links(share).files[0][1]
        assert Client().get(url).status_code == 200
        with later(hours=1, seconds=1):
            assert Client().get(f"/s/{share.token}/").status_code == 410
            response = Client().get(url)
            assert response.status_code == 410 and b"expired" in response.content
        share.refresh_from_db()
        assert share.state(timezone.now() + dt.timedelta(hours=2)) == "expired"

    def test_revoked_link_is_gone(self, api_client, user, film):
        share = shares.create_share(user, job_id=film.pk)
        url = page_links(share).files[0][1]
        api_client.post(f"/api/v1/shares/{share.pk}/revoke/")
        for target in (f"/s/{share.token}/", url):
            response = Client().get(target)
            assert response.status_code == 410 and b"turned off" in response.content

    def test_unknown_or_mangled_token_is_404(self, user, film):
        share = shares.create_share(user, job_id=film.pk)
        for token in ["nope", share.token.upper(), share.token[:-1] + "0" if share.token[-1] != "0" else "1",
                      "a" * 200]:
            assert Client().get(f"/s/{token}/").status_code == 404

    def test_file_share_gives_only_that_file(self, user, film):
        srt = film.rows["Film/subs/en.srt"]
        share = shares.create_share(user, job_id=film.pk, file_id=srt.pk)
        links = page_links(share)
        assert [f.pk for f, _ in links.files] == [srt.pk] and links.zip_url is None
        other = film.rows["Film/film.mkv"]
        assert Client().get(f"/s/{share.token}/f/{other.pk}/film.mkv").status_code == 404
        assert Client().get(f"/s/{share.token}/zip/Film.zip").status_code == 404

    def test_owner_allowance_is_checked(self, user, film):
        PlanAssignmentFactory(user=user, plan=PlanFactory(monthly_transfer_bytes=1000))
        share = shares.create_share(user, job_id=film.pk)
        response = Client().get(page_links(share).zip_url)
        assert response.status_code == 403 and b"allowance" in response.content
        share.refresh_from_db()
        assert share.download_count == 0

    def test_inactive_owner_or_deleted_data_closes_the_link(self, user, film):
        share = shares.create_share(user, job_id=film.pk)
        film.data_deleted_at = timezone.now()
        film.save()
        assert Client().get(f"/s/{share.token}/").status_code == 410
        user.is_active = False
        user.save()
        assert Client().get(f"/s/{share.token}/").status_code == 404

    def test_token_never_logged(self, user, film, caplog):
        share = shares.create_share(user, job_id=film.pk)
        with caplog.at_level("INFO"):
            Client().get(f"/s/{share.token}/")
            Client().get(page_links(share).files[0][1])
            Client().get("/s/nope/")
        assert caplog.records and all(share.token not in r.getMessage() and share.token not in str(vars(r))
                                      for r in caplog.records)


def test_job_page_has_the_share_section(client, user, film):
    client.force_login(user)
    response = client.get(f"/jobs/{film.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="shares"' in text and "js/shares.js" in text and 'data-max-days="7"' in text
