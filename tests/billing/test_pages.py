"""The usage page: plan limits, what is used, and the last 30 days of metering."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import UsageDay
from downloads.models import Status
from tests.billing.factories import GIB, PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory

USAGE = "/usage/"
MIB = 1024**2


@pytest.fixture
def client_user(client, user):
    client.force_login(user)
    return client


def meter(html: str, key: str) -> str:
    start = html.index(f'data-usage="{key}"')
    return html[start:html.index("</div>\n    </div>", start)]


def test_usage_url_name():
    assert reverse("billing:usage") == USAGE


@pytest.mark.django_db
class TestUsagePage:
    def test_requires_login(self, client):
        response = client.get(USAGE)
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))

    def test_shows_plan_limits_and_usage(self, client_user, user):
        plan = PlanFactory(name="Gold", max_storage_bytes=10 * GIB, monthly_transfer_bytes=100 * GIB,
                           max_active_jobs=4, max_job_size_bytes=5 * GIB, retention_days=7,
                           allowed_backends=["engine", "seedr"])
        PlanAssignmentFactory(user=user, plan=plan)
        JobFactory(user=user, status=Status.DOWNLOADING, size_bytes=5 * GIB)
        JobFactory(user=user, status=Status.SEEDING, size_bytes=int(2.5 * GIB))
        JobFactory(user=user, status=Status.COMPLETED, size_bytes=0)
        UsageDay.objects.create(user=user, day=timezone.now().date(), bytes_downloaded=20 * GIB,
                                bytes_delivered=5 * GIB, jobs_created=3)
        response = client_user.get(USAGE)
        html = response.content.decode()
        assert response.status_code == 200
        assert 'Plan: <strong data-usage="plan">Gold</strong>' in html
        storage = meter(html, "storage")
        assert "7.5 GiB of 10.0 GiB" in storage and 'aria-valuenow="75"' in storage
        assert 'aria-labelledby="meter-storage"' in storage
        transfer = meter(html, "transfer")
        assert "25.0 GiB of 100.0 GiB" in transfer and 'aria-valuenow="25"' in transfer
        active = meter(html, "active")
        assert "2 of 4" in active and 'aria-valuenow="50"' in active
        assert '<dd data-usage="max_job_size">5.0 GiB</dd>' in html
        assert '<dd data-usage="retention_days">7 days</dd>' in html
        assert '<dd data-usage="allowed_backends">engine, seedr</dd>' in html

    def test_unlimited_limits_say_so(self, client_user, user):
        plan = PlanFactory(max_storage_bytes=0, monthly_transfer_bytes=0, max_active_jobs=0, max_job_size_bytes=0,
                           retention_days=0)
        PlanAssignmentFactory(user=user, plan=plan)
        html = client_user.get(USAGE).content.decode()
        assert "0 B of Unlimited" in meter(html, "storage")
        assert "0 of Unlimited" in meter(html, "active")
        assert '<dd data-usage="max_job_size">Unlimited</dd>' in html
        assert '<dd data-usage="retention_days">Forever</dd>' in html

    def test_history_is_the_last_30_days_of_this_user_only(self, client_user, user, other_user):
        today = timezone.now().date()
        for n in range(35):
            UsageDay.objects.create(user=user, day=today - dt.timedelta(days=n), bytes_downloaded=n * MIB,
                                    jobs_created=n)
        UsageDay.objects.create(user=other_user, day=today - dt.timedelta(days=100), bytes_downloaded=999)
        html = client_user.get(USAGE).content.decode()
        days = re.findall(r'<th scope="row"><time datetime="([\d-]+)">', html)
        assert days == [(today - dt.timedelta(days=n)).isoformat() for n in range(30)]
        yesterday = (today - dt.timedelta(days=1)).isoformat()
        assert re.search(rf'datetime="{yesterday}">{yesterday}</time></th><td>1.0 MiB</td><td>0 B</td><td>1</td>', html)
        assert (today - dt.timedelta(days=100)).isoformat() not in html

    def test_no_history_yet(self, client_user):
        assert "No usage recorded yet." in client_user.get(USAGE).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("ratio", "minutes", "idle", "expected"), [
    (1.0, 60, 30, ["After downloading, a torrent seeds (shares with other peers) until its share ratio "
                   "(uploaded / size) reaches 1 or it has seeded for 1 hour, whichever comes first.",
                   "Seeding also ends when no peer has wanted data for 30 minutes (except for private torrents, "
                   "whose trackers count seeding time)."]),
    (0.0, 90, 0, ["After downloading, a torrent seeds (shares with other peers) until it has seeded for 90 minutes, "
                  "whichever comes first."]),
    (2.5, 0, 1, ["After downloading, a torrent seeds (shares with other peers) until its share ratio "
                 "(uploaded / size) reaches 2.5, whichever comes first.",
                 "Seeding also ends when no peer has wanted data for 1 minute (except for private torrents, whose "
                 "trackers count seeding time)."]),
    (0.0, 0, 30, ["Your plan does not seed: a download completes as soon as its files are complete."]),
])
def test_usage_page_shows_the_seeding_rules_of_the_plan(client_user, user, settings, ratio, minutes, idle, expected):
    settings.SEED_IDLE_MINUTES = idle
    PlanAssignmentFactory(user=user, plan=PlanFactory(seed_ratio_limit=ratio, seed_time_limit_minutes=minutes))
    html = client_user.get(USAGE).content.decode()
    section = html[html.index('data-usage="seeding"'):]
    section = section[:section.index("</section>")]
    rules = re.findall(r"<li>(.*?)</li>", section)
    if ratio or minutes:
        assert rules[-1] == "The download shows Completed when seeding ends; its files are available all along."
        rules = rules[:-1]
    assert rules == expected
