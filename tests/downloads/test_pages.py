"""The dashboard and job detail pages, through Django's test client (no JavaScript)."""

import json
import re

import pytest
from django.urls import reverse

from config.formatting import human_bytes, human_eta
from downloads import services
from downloads.models import Status
from tests.accounts.factories import UserFactory
from tests.billing.factories import GIB, PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobEventFactory, JobFactory, JobFileFactory

DASHBOARD = "/"


@pytest.fixture
def client_user(client, user):
    client.force_login(user)
    return client


def card_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="card job-card" data-job-id="(\d+)"', html)]


def json_script(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


def card_html(html: str, job_id: int) -> str:
    start = html.index(f'data-job-id="{job_id}"')
    end = html.find("</article>", start)
    return html[start:end]


@pytest.mark.django_db
class TestDashboardAccess:
    def test_requires_login(self, client):
        response = client.get(DASHBOARD)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))
        assert "next=/" in response["Location"]

    def test_redirects_to_policy_until_accepted(self, client):
        newcomer = UserFactory(accepted_policy_version=0)
        client.force_login(newcomer)
        response = client.get(DASHBOARD + "?status=failed")
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('accounts:policy')}?next=%2F%3Fstatus%3Dfailed"

    def test_detail_and_usage_also_gated_by_policy(self, client):
        newcomer = UserFactory(accepted_policy_version=0)
        job = JobFactory(user=newcomer)
        client.force_login(newcomer)
        for url in (reverse("downloads:job_detail", args=[job.pk]), reverse("billing:usage")):
            assert client.get(url)["Location"].startswith(reverse("accounts:policy"))

    def test_sets_csrf_cookie_for_the_api_calls(self, client_user):
        response = client_user.get(DASHBOARD)
        assert "csrftoken" in response.cookies


@pytest.mark.django_db
class TestDashboardContent:
    def test_empty_state(self, client_user):
        html = client_user.get(DASHBOARD).content.decode()
        assert re.search(r'<div class="empty" id="empty-state"\s*>', html), "empty state must be visible"
        assert "No downloads yet" in html
        assert card_ids(html) == []
        assert json_script(html, "job-states") == []

    def test_empty_state_hidden_when_there_are_jobs(self, client_user, user):
        JobFactory(user=user)
        html = client_user.get(DASHBOARD).content.decode()
        assert re.search(r'<div class="empty" id="empty-state" hidden>', html)

    def test_shows_own_jobs_newest_first_and_never_another_users(self, client_user, user, other_user):
        old = JobFactory(user=user, name="Old ISO")
        new = JobFactory(user=user, name="New ISO")
        theirs = JobFactory(user=other_user, name="Mallory secret")
        response = client_user.get(DASHBOARD)
        html = response.content.decode()
        assert card_ids(html) == [new.pk, old.pk]
        assert "Mallory secret" not in html
        assert [s["id"] for s in json_script(html, "job-states")] == [new.pk, old.pk]
        assert theirs.pk not in [s["id"] for s in json_script(html, "job-states")]

    def test_card_shows_status_progress_stats_and_reason(self, client_user, user):
        job = JobFactory(
            user=user, name="Debian ISO", status=Status.DOWNLOADING, progress=0.425, size_bytes=4 * GIB,
            downloaded_bytes=1825361100, download_rate=3 * 1024**2, upload_rate=512, eta_seconds=3725,
            peers=12, seeds=7, reason="No 'engine' backend is running yet; the job starts soon.",
        )
        html = card_html(client_user.get(DASHBOARD).content.decode(), job.pk)
        assert f'href="/jobs/{job.pk}/">Debian ISO</a>' in html
        assert 'class="badge badge-downloading"' in html and ">Downloading<" in html
        assert 'role="progressbar"' in html and 'aria-valuenow="42"' in html
        assert "1.7 GiB / 4.0 GiB" in html
        assert "3.0 MiB/s" in html and "512 B/s" in html
        assert "1h 2m 5s" in html
        assert ">12</span> peers" in html and ">7</span> seeds" in html
        assert "No &#x27;engine&#x27; backend is running yet" in html

    @pytest.mark.parametrize(
        ("status", "visible"),
        [
            (Status.QUEUED, {"pause", "cancel", "delete"}),
            (Status.DOWNLOADING, {"pause", "cancel", "delete"}),
            (Status.PAUSED, {"resume", "cancel", "delete"}),
            (Status.FAILED, {"retry", "delete"}),
            (Status.CANCELLED, {"retry", "delete"}),
            (Status.COMPLETED, {"delete"}),
        ],
    )
    def test_action_buttons_follow_status(self, client_user, user, status, visible):
        job = JobFactory(user=user, name="Thing", status=status)
        html = card_html(client_user.get(DASHBOARD).content.decode(), job.pk)
        buttons = dict(re.findall(r'data-action="(\w+)" aria-label="[^"]+" (hidden)?', html))
        assert set(buttons) == {"pause", "resume", "retry", "cancel", "delete"}
        assert {name for name, hidden in buttons.items() if not hidden} == visible
        assert 'aria-label="Pause Thing"' in html  # every button names its job

    def test_status_filter(self, client_user, user):
        failed = JobFactory(user=user, status=Status.FAILED)
        JobFactory(user=user, status=Status.QUEUED)
        running = JobFactory(user=user, status=Status.DOWNLOADING)
        assert card_ids(client_user.get(DASHBOARD + "?status=failed").content.decode()) == [failed.pk]
        assert card_ids(client_user.get(DASHBOARD + "?status=active").content.decode()) == [running.pk]
        assert len(card_ids(client_user.get(DASHBOARD + "?status=bogus").content.decode())) == 3

    def test_filtered_empty_state_says_so(self, client_user, user):
        JobFactory(user=user, status=Status.QUEUED)
        html = client_user.get(DASHBOARD + "?status=completed").content.decode()
        assert "No completed downloads." in html
        assert json_script(html, "page-config")["filter"] == ["completed"]

    def test_first_page_is_the_newest_fifty(self, client_user, user):
        jobs = JobFactory.create_batch(55, user=user)
        ids = card_ids(client_user.get(DASHBOARD).content.decode())
        assert ids == sorted((j.pk for j in jobs), reverse=True)[:50]

    def test_usage_panel_and_add_dialog(self, client_user, user):
        PlanAssignmentFactory(user=user, plan=PlanFactory(name="Gold", max_storage_bytes=10 * GIB, max_active_jobs=4))
        JobFactory(user=user, status=Status.DOWNLOADING, size_bytes=3 * GIB)
        html = client_user.get(DASHBOARD).content.decode()
        assert 'Plan: <strong data-usage="plan">Gold</strong>' in html
        assert "3.0 GiB of 10.0 GiB" in html
        assert 'aria-valuenow="30"' in html
        assert "1 of 4" in html  # active jobs / limit
        assert '<dialog id="add-dialog"' in html
        assert '<option value="engine">Built-in engine</option>' in html
        for tab in ("Magnet", "Batch", ".torrent"):
            assert re.search(rf'role="tab"[^>]*>{re.escape(tab)}</button>', html)
        assert 'class="dropzone"' in html

    def test_page_config_for_the_scripts(self, client_user):
        config = json_script(client_user.get(DASHBOARD).content.decode(), "page-config")
        assert config["wsPath"] == "/ws/events/"
        assert config["apiJobs"] == "/api/v1/jobs/"
        assert config["detailUrl"] == "/jobs/0/"
        assert "completed" not in config["actions"]["pause"]
        assert config["statusLabels"]["fetching_metadata"] == "Fetching metadata"

    def test_query_count_does_not_grow_with_jobs(self, client_user, user, django_assert_max_num_queries):
        JobFactory.create_batch(30, user=user, status=Status.DOWNLOADING)
        # session, user, jobs, plan assignment, default plan, storage, transfer, active count,
        # the user's servers (add dialog choices), servers in error (badges)
        with django_assert_max_num_queries(10):
            response = client_user.get(DASHBOARD)
        assert len(card_ids(response.content.decode())) == 30


@pytest.mark.django_db
class TestJobDetail:
    def test_another_users_job_is_404(self, client_user, other_user):
        job = JobFactory(user=other_user)
        assert client_user.get(reverse("downloads:job_detail", args=[job.pk])).status_code == 404

    def test_requires_login(self, client, user):
        job = JobFactory(user=user)
        response = client.get(reverse("downloads:job_detail", args=[job.pk]))
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))

    def test_shows_status_files_and_recent_events(self, client_user, user):
        job = services.add_magnet(user, "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=Big+Buck+Bunny")
        services.change_status(job, Status.FAILED, reason_code="tracker", reason="Tracker said no.")
        JobFileFactory(job=job, path="Big Buck Bunny/movie.mkv", size_bytes=5 * 1024**2, completed_bytes=0)
        JobEventFactory(job=job, kind="progress", code="downloading", data={"progress": 0.5})
        response = client_user.get(reverse("downloads:job_detail", args=[job.pk]))
        html = response.content.decode()
        assert response.status_code == 200
        assert '<h1 id="job-title" data-f="name">Big Buck Bunny</h1>' in html
        assert 'class="badge badge-failed"' in html
        assert "Big Buck Bunny/movie.mkv" in html and "5.0 MiB" in html
        assert "Added (engine)." in html
        assert "Failed. Tracker said no." in html
        assert ">progress<" not in html  # ticks are noise in the history
        assert 'data-action="retry" aria-label="Retry Big Buck Bunny" >' in html
        config = json_script(html, "page-config")
        assert config["jobId"] == job.pk and config["filesUrl"] == f"/api/v1/jobs/{job.pk}/files/"
        assert json_script(html, "job-state")["status"] == "failed"


def test_formatters_match_the_javascript():
    assert human_bytes(None) == "?"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"
    assert human_eta(None) == "—"
    assert human_eta(59) == "59s"
    assert human_eta(61) == "1m 1s"
    assert human_eta(3725) == "1h 2m 5s"
