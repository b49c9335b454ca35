"""The Audiobooks page: the user's books with their processing progress (step, n/N), where each was published,
why one failed (with Retry), each tracker download's seeding state, the user's tracker accounts and open alerts,
and the library / Audiobookshelf settings. The page renders the first state on
the server; static/js/audiobooks.js refreshes it over /api/v1/audiobooks/ while a book is being made, and
sends Retry and the settings form to the same API. The token is write-only: the page only knows whether one is
set. The job page's tracker-alert panel is redrawn from `job_alerts`."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.decorators import policy_required
from audiobooks import services
from audiobooks.compliance import status as tracker_status
from audiobooks.serializers import AudiobookSerializer, SettingsSerializer
from downloads.models import Job

PAGE_SIZE = 100  # the newest books; the API pages through the rest


@policy_required
@ensure_csrf_cookie
def audiobook_list(request: HttpRequest) -> HttpResponse:
    books = tracker_status.books_of(request.user)[:PAGE_SIZE]
    rows = AudiobookSerializer(books, many=True).data
    tracker = tracker_status.tracker_status(request.user)  # rendered with the date filter; JS reads the API
    prefs = SettingsSerializer(services.get_settings(request.user)).data
    config = {
        "apiBooks": reverse("audiobook-list"),
        "retryUrl": reverse("audiobook-retry", args=[0]),
        "apiSettings": reverse("audiobook-settings"),
        "apiTracker": reverse("audiobook-tracker"),
        "trackerRefreshSeconds": 60,
        "jobUrl": reverse("downloads:job_detail", args=[0]),
        "refreshSeconds": 5,
        "pageSize": PAGE_SIZE,
    }
    return render(request, "audiobooks/list.html", {
        "nav": "audiobooks",
        "books": rows,
        "prefs": prefs,
        "tracker": tracker,
        "library_configured": bool(settings.AUDIOBOOK_LIBRARY_ROOT),
        "config": config,
        "books_json": list(rows),
    })


@policy_required
def job_alerts(request: HttpRequest, job_id: int) -> HttpResponse:
    """The open tracker alerts of one of the user's jobs, as the job page's panel lists them (its script asks
    again when the job's live events say an alert was raised or cleared). Another user's job: 404."""
    job = get_object_or_404(Job.objects.for_user(request.user), pk=job_id)
    return render(request, "audiobooks/_job_alert_items.html", {"tracker_alerts": tracker_status.job_alerts(job)})
