"""The Audiobooks page and the AudiobookJob admin: gated like every page; the user's own books with state, step
n/N and progress, where each was published, a failure's reason with Retry; the settings form without the token;
titles from torrents escaped; flat in queries. The admin retries through the service (audited) and keeps the
worker's fields read-only."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog
from audiobooks import services
from audiobooks.models import AudiobookJob
from config import nav
from downloads.models import Status
from tests.accounts.factories import UserFactory
from tests.audiobooks.test_api import failed_book
from tests.downloads.factories import JobFactory
from tests.downloads.runs import run_postprocess

pytestmark = pytest.mark.django_db
PAGE = "/audiobooks/"


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


def book(user, **fields) -> AudiobookJob:
    made = services.mark(user, JobFactory(user=user, status=Status.DOWNLOADING))
    AudiobookJob.objects.filter(pk=made.pk).update(**fields)
    made.refresh_from_db()
    return made


def html_of(browser) -> str:
    response = browser.get(PAGE)
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_needs_a_signed_in_user_who_accepted_the_policy(client):
    anonymous = client.get(PAGE)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("accounts:login"))
    client.force_login(UserFactory(accepted_policy_version=0))
    gated = client.get(PAGE)
    assert gated.status_code == 302 and gated["Location"].startswith(reverse("accounts:policy"))


def test_books_show_their_step_progress_and_where_they_were_published(browser, user, other_user):
    book(user, title="Merging Now", authors=["Ann"], series="Saga", sequence="2", state="processing",
         step="merging", step_done=7, step_total=20)
    book(user, title="Done Book", state="published", published_path="/elsewhere/Done Book", chapters=12)
    book(other_user, title="Mallory's Secret Book")
    html = html_of(browser)
    assert "Merging Now" in html and "merging 7/20" in html and "Ann · Saga #2" in html
    assert 'aria-valuenow="38"' in html  # 0.1 + 0.8 * 7/20 of the bar
    assert "Done Book" in html and "Done Book</dd>" in html and 'aria-valuenow="100"' in html
    assert "Mallory" not in html
    config = json.loads(html.split('id="audiobooks-config" type="application/json">')[1].split("</script>")[0])
    assert (config["apiBooks"], config["retryUrl"], config["apiSettings"]) == (
        "/api/v1/audiobooks/", "/api/v1/audiobooks/0/retry/", "/api/v1/audiobooks/settings/")
    assert "js/audiobooks.js" in html


def test_a_failed_book_says_why_and_offers_retry(browser, user, tmp_path):
    failed = failed_book(user, tmp_path)
    html = html_of(browser)
    assert "Broken/02.mp3: not readable audio" in html
    assert f'data-retry="{failed.pk}"' in html


def test_titles_are_escaped_and_the_token_never_reaches_the_page(browser, user):
    book(user, title='"><script>alert(1)</script>')
    services.update_settings(user, abs_url="http://abs.test:13378", abs_token="tok-never-shown", abs_library_id="L1")
    html = html_of(browser)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "tok-never-shown" not in html and "(set: leave empty to keep it)" in html
    assert 'value="http://abs.test:13378"' in html


def test_the_page_is_flat_in_queries(browser, user):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            html_of(browser)
        return len(queries)

    book(user)
    one = count()
    for _ in range(5):
        book(user)
    assert count() == one


def test_admin_lists_books_and_retries_through_the_service(client, admin_user, user, tmp_path):
    failed = failed_book(user, tmp_path)
    AudiobookJob.objects.filter(pk=failed.pk).update(accept_damaged=True)
    book(user, title="Still Waiting")
    client.force_login(admin_user)
    listing = client.get(reverse("admin:audiobooks_audiobookjob_changelist") + "?failed=today")
    assert listing.status_code == 200
    assert "Broken Book" in listing.content.decode() and "Still Waiting" not in listing.content.decode()
    change = client.get(reverse("admin:audiobooks_audiobookjob_change", args=[failed.pk])).content.decode()
    assert 'name="title"' in change and 'name="error_code"' not in change and 'name="state"' not in change

    response = client.post(reverse("admin:audiobooks_audiobookjob_changelist"),
                           {"action": "retry", "_selected_action": [failed.pk]}, follow=True)
    assert "Retrying: 1." in response.content.decode()
    audit = AuditLog.objects.get(action="audiobook.retry")
    assert (audit.actor, audit.target_id) == (admin_user, str(failed.pk))
    assert run_postprocess(failed.job_id) == 1
    failed.refresh_from_db()
    assert failed.state == "published"
    again = client.post(reverse("admin:audiobooks_audiobookjob_changelist"),
                        {"action": "retry", "_selected_action": [failed.pk]}, follow=True)
    assert "Skipped 1" in again.content.decode()


def test_admin_stuck_filter_finds_books_silent_for_half_an_hour(client, admin_user, user):
    stuck = book(user, title="Stuck One", state="processing")
    AudiobookJob.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timezone.timedelta(hours=1))
    book(user, title="Busy One", state="processing")
    client.force_login(admin_user)
    html = client.get(reverse("admin:audiobooks_audiobookjob_changelist") + "?stuck=yes").content.decode()
    assert "Stuck One" in html and "Busy One" not in html


def test_the_sidebar_entry_is_registered():
    assert "audiobooks" in {e.key for e in nav._entries.values()}
