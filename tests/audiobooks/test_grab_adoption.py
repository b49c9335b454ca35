"""An audiobook grab becomes a book (indexers' grab listener): only a result in Audio/Audiobook, only for a user
who asked for it (`process_grabs`), with the tracker's metadata; a series number that is not one position is
left out. The end-to-end flow is tests/e2e/test_audiobook_flow.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from audiobooks import services
from audiobooks.models import AudiobookJob, AudiobookSettings
from indexers.models import JobSource, SearchResult
from tests.downloads.factories import JobFactory
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db

EXTRA = {"book_title": "Artemis", "authors": ["Andy Weir"], "narrators": ["Rosario Dawson"],
         "series": [{"name": "Moon", "number": "3.5"}], "cover_url": "javascript:alert(1)"}


def grabbed(user, *, categories=(3030, 100039), extra=None) -> tuple:
    indexer = IndexerFactory(owner=user, kind="myanonamouse")
    result = SearchResult.objects.create(user=user, indexer=indexer, guid="g", guid_hash="h", title="Artemis",
                                         categories=list(categories), extra=extra or EXTRA,
                                         expires_at=timezone.now() + dt.timedelta(days=1))
    job = JobFactory(user=user)
    source = JobSource.objects.create(job=job, indexer=indexer, result=result, indexer_name="MAM", guid="g")
    return job, source


def test_an_audiobook_grab_becomes_a_book_with_the_trackers_metadata(user):
    AudiobookSettings.objects.create(user=user, process_grabs=True)
    job, source = grabbed(user)
    book = services.adopt_grab(job, source)
    assert AudiobookJob.objects.get(job=job) == book
    assert (book.title, book.authors, book.narrators, book.series, book.sequence, book.cover_url) == (
        "Artemis", ["Andy Weir"], ["Rosario Dawson"], "Moon", "3.5", "")  # not an http(s) URL: dropped
    assert AuditLog.objects.filter(action="audiobook.mark", target_id=str(book.pk)).exists()


def test_a_range_of_series_numbers_is_not_a_sequence(user):
    AudiobookSettings.objects.create(user=user, process_grabs=True)
    job, source = grabbed(user, extra={**EXTRA, "series": [{"name": "Saga", "number": "01-16, 13.5"}]})
    assert services.adopt_grab(job, source).sequence == ""


@pytest.mark.parametrize("process_grabs", [False, None])
def test_without_the_users_say_so_a_grab_stays_a_download(user, process_grabs):
    if process_grabs is not None:
        AudiobookSettings.objects.create(user=user, process_grabs=process_grabs)
    job, source = grabbed(user)
    assert services.adopt_grab(job, source) is None and not AudiobookJob.objects.exists()


def test_a_grab_outside_audio_audiobook_stays_a_download(user):
    AudiobookSettings.objects.create(user=user, process_grabs=True)
    job, source = grabbed(user, categories=(7020, 100061))
    assert services.adopt_grab(job, source) is None and not AudiobookJob.objects.exists()


def test_the_listener_is_registered_with_indexers():
    from indexers import services as indexers

    assert services.adopt_grab in indexers._grab_listeners
