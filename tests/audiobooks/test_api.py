"""/api/v1/audiobooks/: the user's books with state, progress and published path; marking a job of theirs as a
book; retrying a failed one; settings with a write-only token. Another user's job or book is a 404 and stays
untouched; every change writes an audit row."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import AuditLog
from audiobooks import services
from audiobooks.models import AudiobookJob, AudiobookSettings
from downloads import finish
from downloads.models import Status
from tests.audiobooks import books
from tests.audiobooks.test_processor import job_with_book
from tests.downloads.factories import JobFactory
from tests.downloads.runs import run_postprocess

URL = "/api/v1/audiobooks/"


def failed_book(user, tmp_path) -> AudiobookJob:
    src = tmp_path / "dl" / "Broken"
    books.tone(src / "01.mp3", 1.0)
    (src / "02.mp3").write_bytes(b"not audio at all" * 100)
    job = job_with_book(user, src)
    services.mark(user, job, title="Broken Book", authors=["A. Writer"])
    finish.finish(job)
    run_postprocess(job.pk)
    return AudiobookJob.objects.get(job=job)


@pytest.mark.django_db
def test_mark_a_job_of_mine_then_list_it(api_client, user):
    job = JobFactory(user=user, status=Status.DOWNLOADING, name="Tones.Unabridged")
    response = api_client.post(URL, {"job": job.pk, "title": "The Tones", "authors": ["Ann Author"],
                                     "narrators": ["Ned"], "series": "Sounds", "sequence": "3.5", "year": 1999},
                               format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["job"], body["job_name"], body["state"], body["title"], body["authors"], body["sequence"]) == (
        job.pk, "Tones.Unabridged", "waiting", "The Tones", ["Ann Author"], "3.5")
    listing = api_client.get(URL).json()
    assert [b["id"] for b in listing["results"]] == [body["id"]]
    audit = AuditLog.objects.get(action="audiobook.mark")
    assert (audit.actor, audit.target_id) == (user, str(body["id"]))


@pytest.mark.django_db
def test_marking_twice_is_a_conflict_and_bad_fields_are_invalid(api_client, user):
    job = JobFactory(user=user, status=Status.DOWNLOADING)
    assert api_client.post(URL, {"job": job.pk}, format="json").status_code == 201
    again = api_client.post(URL, {"job": job.pk}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "already_audiobook")
    bad = api_client.post(URL, {"job": job.pk, "sequence": "one", "year": 12}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


@pytest.mark.django_db
def test_list_is_flat_in_queries(api_client, user, django_assert_num_queries):
    for _ in range(3):
        services.mark(user, JobFactory(user=user, status=Status.DOWNLOADING))
    # Three queries: the page (config.pagination counts no rows; each book's job, seeding ledger and source come
    # joined), the open tracker alerts of its jobs, the tracker rules.
    with django_assert_num_queries(3):
        assert len(api_client.get(URL).json()["results"]) == 3


@pytest.mark.django_db
def test_a_failed_book_shows_why_and_retry_runs_it_again(api_client, user, tmp_path):
    book = failed_book(user, tmp_path)
    body = api_client.get(f"{URL}{book.pk}/").json()
    assert (body["state"], body["error_code"], body["job_status"]) == ("failed", "audiobook_bad_file", "failed")
    assert body["error"].startswith("Broken/02.mp3: not readable audio")

    AudiobookJob.objects.filter(pk=book.pk).update(accept_damaged=True)
    response = api_client.post(f"{URL}{book.pk}/retry/")
    assert response.status_code == 200
    assert response.json()["state"] == "processing"
    assert AuditLog.objects.filter(action="audiobook.retry", target_id=str(book.pk)).count() == 1
    assert run_postprocess(book.job_id) == 1
    body = api_client.get(f"{URL}{book.pk}/").json()
    assert (body["state"], body["step"], body["chapters"]) == ("published", "published", 1)
    assert body["published_path"] == f"{user.pk}/A. Writer/Broken Book"
    again = api_client.post(f"{URL}{book.pk}/retry/")
    assert (again.status_code, again.json()["code"]) == (409, "illegal_transition")


@pytest.mark.django_db
def test_another_users_job_and_book_are_404_and_untouched(api_client, user, other_user, tmp_path):
    theirs = failed_book(other_user, tmp_path)
    their_job = JobFactory(user=other_user, status=Status.DOWNLOADING)
    before = (AudiobookJob.objects.get(pk=theirs.pk).updated_at, AuditLog.objects.count())
    for method, url, data in [("get", f"{URL}{theirs.pk}/", None), ("post", f"{URL}{theirs.pk}/retry/", None),
                              ("post", URL, {"job": their_job.pk})]:
        response = getattr(api_client, method)(url, data, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), url
    assert api_client.get(URL).json()["results"] == []
    assert not AudiobookJob.objects.filter(job=their_job).exists()
    assert (AudiobookJob.objects.get(pk=theirs.pk).updated_at, AuditLog.objects.count()) == before


@pytest.mark.django_db
def test_settings_token_is_write_only_and_the_folder_stays_inside_the_root(api_client, user):
    assert api_client.get(f"{URL}settings/").json()["has_abs_token"] is False
    assert not AudiobookSettings.objects.exists()  # reading writes nothing
    put = api_client.put(f"{URL}settings/", {"library_dir": "family/books", "abs_url": "http://abs.test:13378",
                                             "abs_token": "s3cret-token", "abs_library_id": "lib1"}, format="json")
    assert put.status_code == 200, put.json()
    body = put.json()
    assert "abs_token" not in body and body["has_abs_token"] is True
    assert body["library_path"] == str(Path(settings.AUDIOBOOK_LIBRARY_ROOT) / "family/books")
    assert (Path(settings.AUDIOBOOK_LIBRARY_ROOT) / "family" / "books").is_dir()
    # A blank token keeps the stored one.
    api_client.put(f"{URL}settings/", {"abs_token": "", "abs_url": "http://abs.test:13378"}, format="json")
    assert AudiobookSettings.objects.get(user=user).abs_token == "s3cret-token"
    audits = AuditLog.objects.filter(action="audiobook.settings")
    assert audits.count() == 2 and "s3cret-token" not in str(list(audits.values_list("metadata", flat=True)))

    for hostile in ("../outside", "a/../../x", "x" * 256):
        response = api_client.put(f"{URL}settings/", {"library_dir": hostile}, format="json")
        assert response.status_code == 400, hostile
        assert set(response.json()) >= {"code", "detail"}
    assert AudiobookSettings.objects.get(user=user).library_dir == "family/books"


@pytest.mark.django_db
def test_unauthenticated_is_refused(client):
    response = client.get(URL)
    assert response.status_code in (401, 403) and set(response.json()) >= {"code", "detail"}
