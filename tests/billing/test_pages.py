"""The usage page: plan limits, what is used, and the last 30 days of metering."""

import datetime as dt
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog
from billing import services
from billing.models import UpgradeRequest, UsageDay
from billing.services import current_plan
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


# --- the usage page's charts (data handed to static/js/usage.js) ------------------------------------------


def json_script(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


@pytest.mark.django_db
@pytest.mark.parametrize("today", [dt.date(2026, 11, 17), dt.date(2026, 12, 1)], ids=["mid-month", "first-day"])
def test_transfer_chart_has_every_day_of_the_month_so_far(client_user, user, other_user, monkeypatch, today):
    # The page's "today" is pinned: the first of a month is a case of its own, not an accident of the calendar.
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today)
    first = today.replace(day=1)
    UsageDay.objects.create(user=user, day=first, bytes_downloaded=3 * MIB, bytes_delivered=MIB)
    if today != first:
        UsageDay.objects.create(user=user, day=today, bytes_downloaded=5 * MIB)
    UsageDay.objects.create(user=user, day=first - dt.timedelta(days=1), bytes_downloaded=7 * MIB)  # last month
    UsageDay.objects.create(user=user, day=today + dt.timedelta(days=1), bytes_downloaded=13 * MIB)  # not yet
    UsageDay.objects.create(user=other_user, day=today, bytes_downloaded=11 * MIB)
    data = json_script(client_user.get(USAGE).content.decode(), "transfer-data")
    assert len(data["t"]) == today.day
    assert data["t"][0] == int(dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC).timestamp())
    assert data["t"][-1] == int(dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC).timestamp())
    assert data["downloaded"][0] == 3 * MIB and data["delivered"][0] == MIB
    assert data["downloaded"][-1] == (3 * MIB if today == first else 5 * MIB)
    assert sum(data["downloaded"]) == (3 * MIB if today == first else 8 * MIB)


@pytest.mark.django_db
def test_storage_chart_lists_largest_jobs_and_groups_the_rest(client_user, user, other_user):
    for n in range(14):
        JobFactory(user=user, name=f"Job {n:02}", size_bytes=(n + 1) * MIB)
    JobFactory(user=user, name="Removed", size_bytes=999 * MIB, data_deleted_at=timezone.now())
    JobFactory(user=other_user, name="Not mine", size_bytes=500 * MIB)
    html = client_user.get(USAGE).content.decode()
    assert 'data-src="/usage/storage-by-download.json"' in html
    data = client_user.get("/usage/storage-by-download.json").json()
    assert data["names"][:3] == ["Job 13", "Job 12", "Job 11"]
    assert len(data["names"]) == 13 and data["names"][-1] == "Other downloads"
    assert data["bytes"][-1] == (1 + 2) * MIB  # Job 00 and Job 01
    assert "Removed" not in data["names"] and "Not mine" not in data["names"]


# --- the Plans page and upgrade requests ------------------------------------------------------------------

PLANS = "/plans/"


@pytest.mark.django_db
class TestPlansPage:
    def test_lists_plans_with_limits_and_marks_mine(self, client_user, user):
        gold = PlanFactory(name="Gold", max_storage_bytes=0, monthly_transfer_bytes=2 * GIB, max_active_jobs=9)
        PlanAssignmentFactory(user=user, plan=PlanFactory(name="Silver"))
        html = client_user.get(PLANS).content.decode()
        assert reverse("billing:plans") == PLANS
        gold_card = html[html.index(f'id="plan-{gold.pk}"'):]
        gold_card = gold_card[:gold_card.index("</article>")]
        assert "<dt>Storage</dt><dd>Unlimited</dd>" in gold_card
        assert "<dt>Transfer per month</dt><dd>2.0 GiB</dd>" in gold_card
        assert "<dt>Downloads at once</dt><dd>9</dd>" in gold_card
        assert "Request the Gold plan</button>" in gold_card
        silver = html[html.index(">Silver</h2>"):]
        silver = silver[:silver.index("</article>")]
        assert "Your plan" in silver and "Request the" not in silver
        assert 'href="/plans/" aria-current="page">Plans</a>' in html  # the sidebar marks the page

    def test_upgrade_request_is_recorded_audited_and_shown(self, client_user, user):
        gold = PlanFactory(name="Gold")
        response = client_user.post(reverse("billing:upgrade", args=[gold.pk]), follow=True)
        request = UpgradeRequest.objects.get()
        assert (request.user, request.plan, request.status) == (user, gold, "open")
        assert request.from_plan == current_plan(user).name
        audit = AuditLog.objects.get(action="plan.upgrade_request")
        assert audit.actor == user and audit.target_id == str(request.pk)
        html = response.content.decode()
        assert "Request sent: an operator will move you to the Gold plan." in html  # the toast's text
        assert "Requested: waiting for an operator" in html

    def test_second_request_and_own_plan_are_refused_with_the_reason(self, client_user, user):
        gold = PlanFactory(name="Gold")
        client_user.post(reverse("billing:upgrade", args=[gold.pk]))
        html = client_user.post(reverse("billing:upgrade", args=[gold.pk]), follow=True).content.decode()
        assert "You already asked for the Gold plan" in html
        mine = current_plan(user)
        html = client_user.post(reverse("billing:upgrade", args=[mine.pk]), follow=True).content.decode()
        assert f"You are already on the {mine.name} plan." in html
        assert UpgradeRequest.objects.count() == 1

    def test_upgrade_needs_post_and_an_existing_plan(self, client_user):
        assert client_user.get(reverse("billing:upgrade", args=[PlanFactory().pk])).status_code == 405
        assert client_user.post(reverse("billing:upgrade", args=[999_999])).status_code == 404


@pytest.mark.django_db
def test_operator_assigns_or_declines_requests_in_the_admin(client, admin_user, user, other_user):
    gold = PlanFactory(name="Gold")
    first = services.request_upgrade(user, gold)
    second = services.request_upgrade(other_user, gold)
    client.force_login(admin_user)
    changelist = reverse("admin:billing_upgraderequest_changelist")
    html = client.get(changelist).content.decode()
    assert "alice@example.com" in html and "mallory@example.com" in html
    client.post(changelist, {"action": "assign_plan", "_selected_action": [first.pk]})
    client.post(changelist, {"action": "decline", "_selected_action": [second.pk, first.pk]})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.handled_by) == ("assigned", admin_user)
    assert (second.status, second.handled_by) == ("declined", admin_user)
    assert current_plan(user) == gold and current_plan(other_user) != gold
    assert set(AuditLog.objects.filter(action__startswith="plan.upgrade_").values_list("action", flat=True)) == {
        "plan.upgrade_request", "plan.upgrade_assigned", "plan.upgrade_declined"}
