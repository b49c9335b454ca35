"""The operator console: every changelist renders cheaply, lists keep secrets out, actions go through services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import ApiKey, AuditLog, User
from billing.models import PlanAssignment, UsageDay
from config.admin_paginator import CappedCountPaginator
from config.crypto import keyed_hash
from downloads import services
from downloads.models import BlockedInfoHash, Job, JobEvent, PreloadItem, ProcessHeartbeat, Status
from tests.accounts.factories import ApiKeyFactory, UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import BatchFactory, JobEventFactory, JobFactory, JobFileFactory

ROWS = 30
BLOCKED_HASH = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def console_rows(admin_user):
    """About ROWS rows in every table the console lists."""
    plan = PlanFactory()
    users = UserFactory.create_batch(ROWS)
    for user in users:
        PlanAssignmentFactory(user=user, plan=plan)
        ApiKeyFactory(user=user, raw=f"flt_console{user.pk:040d}")
        UsageDay.objects.create(user=user, day=timezone.now().date(), bytes_downloaded=2**30)
    batch = BatchFactory(user=users[0])
    jobs = [JobFactory(user=users[i % 5], batch=batch if i < 10 else None, size_bytes=2**30) for i in range(ROWS)]
    for job in jobs:
        JobFileFactory(job=job)
        JobEventFactory(job=job)
        PreloadItem.objects.create(user=job.user, job=job, priority=job.pk % 4 + 1)
        record_audit("job.test", actor=admin_user, target=job)
    for i in range(ROWS):
        BatchFactory(user=users[i % 5])
        ProcessHeartbeat.objects.create(kind="worker", name=f"worker@host:{i}", info={"n": i})
        services.block_info_hash(admin_user, f"{i:040x}", f"reason {i}")
    services.block_info_hash(admin_user, BLOCKED_HASH, "the one we look for")
    return jobs


CHANGELISTS = [
    "accounts_user",
    "accounts_apikey",
    "accounts_auditlog",
    "billing_plan",
    "billing_planassignment",
    "billing_usageday",
    "downloads_job",
    "downloads_jobevent",
    "downloads_batch",
    "downloads_jobfile",
    "downloads_blockedinfohash",
    "downloads_processheartbeat",
    "downloads_preloaditem",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", CHANGELISTS)
def test_changelist_renders_with_bounded_queries(admin_client, console_rows, name, django_assert_max_num_queries):
    url = reverse(f"admin:{name}_changelist")
    # session, user, paginator count, rows, DISTINCT for value filters, savepoints: never one per row. The
    # operator is not a superuser, so two more: their own and their groups' permissions (once per request).
    with django_assert_max_num_queries(6 + 2):
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= min(ROWS, 1 if name == "billing_plan" else ROWS)


@pytest.mark.django_db
@pytest.mark.parametrize("name", CHANGELISTS)
def test_list_views_never_show_magnets_or_info_hashes(admin_client, console_rows, name):
    body = admin_client.get(reverse(f"admin:{name}_changelist")).content.decode()
    for job in Job.objects.all():
        assert job.info_hash not in body
        assert "magnet:?" not in body
    assert BLOCKED_HASH not in body
    assert "key_hash" not in body


@pytest.mark.django_db
def test_job_list_does_not_load_secret_columns(admin_client, console_rows):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(reverse("admin:downloads_job_changelist"))
    job_selects = [q["sql"] for q in queries if 'FROM "downloads_job"' in q["sql"] and "SELECT" in q["sql"]]
    assert job_selects
    assert not any('"downloads_job"."magnet"' in sql or '"downloads_job"."torrent"' in sql for sql in job_selects)


@pytest.mark.django_db
def test_job_change_view_shows_info_hash_read_only_but_never_the_magnet(admin_client, console_rows):
    job = console_rows[0]
    body = admin_client.get(reverse("admin:downloads_job_change", args=[job.pk])).content.decode()
    assert job.info_hash in body
    assert "magnet:?" not in body
    assert 'name="info_hash"' not in body  # displayed, not an input
    assert f"job__id__exact={job.pk}" in body  # link to its events and files


@pytest.mark.django_db
def test_job_admin_is_view_only(admin_client, console_rows):
    job = console_rows[0]
    response = admin_client.post(reverse("admin:downloads_job_change", args=[job.pk]), {"name": "renamed"})
    assert response.status_code == 403
    assert admin_client.get(reverse("admin:downloads_job_add")).status_code == 403
    assert admin_client.get(reverse("admin:downloads_job_delete", args=[job.pk])).status_code == 403


# --- job actions ------------------------------------------------------------------------------------


def _action(client, name: str, action: str, pks) -> list[str]:
    response = client.post(
        reverse(f"admin:{name}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


@pytest.mark.django_db(transaction=True)
def test_terminate_cancels_running_jobs_and_reports_skipped(admin_client, admin_user):
    queued = JobFactory(status=Status.QUEUED)
    done = JobFactory(status=Status.COMPLETED)
    messages = _action(admin_client, "downloads_job", "terminate", [queued.pk, done.pk])
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    assert Job.objects.get(pk=done.pk).status == Status.COMPLETED
    assert "Terminated: 1." in messages
    assert any(m.startswith("Skipped 1:") and f"#{done.pk}" in m for m in messages)
    assert AuditLog.objects.filter(action="job.cancel", actor=admin_user, target_id=str(queued.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_retry_requeues_failed_jobs_only(admin_client):
    failed = JobFactory(status=Status.FAILED)
    running = JobFactory(status=Status.DOWNLOADING)
    messages = _action(admin_client, "downloads_job", "retry", [failed.pk, running.pk])
    assert Job.objects.get(pk=failed.pk).status == Status.QUEUED
    assert Job.objects.get(pk=running.pk).status == Status.DOWNLOADING
    assert "Queued again: 1." in messages
    assert any("Skipped 1:" in m and "Only a failed or cancelled job" in m for m in messages)


# --- job filters and search -------------------------------------------------------------------------


def _listed(client, name: str, query: str) -> set[int]:
    response = client.get(reverse(f"admin:{name}_changelist") + query)
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.mark.django_db
def test_stuck_filter_lists_unfinished_jobs_without_updates_for_30_minutes(admin_client):
    stuck = JobFactory(status=Status.DOWNLOADING)
    fresh = JobFactory(status=Status.DOWNLOADING)
    old_but_done = JobFactory(status=Status.COMPLETED)
    old_but_paused = JobFactory(status=Status.PAUSED)
    long_ago = timezone.now() - dt.timedelta(minutes=31)
    Job.objects.filter(pk__in=[stuck.pk, old_but_done.pk, old_but_paused.pk]).update(updated_at=long_ago)
    assert _listed(admin_client, "downloads_job", "?stuck=yes") == {stuck.pk}
    assert fresh.pk in _listed(admin_client, "downloads_job", "")


@pytest.mark.django_db
def test_failed_filters(admin_client):
    now = timezone.now()
    last_hour = JobFactory(status=Status.FAILED, finished_at=now - dt.timedelta(minutes=10))
    long_ago = JobFactory(status=Status.FAILED, finished_at=now - dt.timedelta(days=3))
    JobFactory(status=Status.CANCELLED, finished_at=now)
    assert _listed(admin_client, "downloads_job", "?failed=hour") == {last_hour.pk}
    assert long_ago.pk not in _listed(admin_client, "downloads_job", "?failed=today")


@pytest.mark.django_db
def test_job_search_by_email_id_and_info_hash(admin_client):
    target = JobFactory(user=UserFactory(email="needle@example.com"))
    other = JobFactory()
    assert _listed(admin_client, "downloads_job", "?q=needle@") == {target.pk}
    assert target.pk in _listed(admin_client, "downloads_job", f"?q={target.pk}")
    assert _listed(admin_client, "downloads_job", f"?q={target.info_hash.upper()}") == {target.pk}
    assert other.pk not in _listed(admin_client, "downloads_job", "?q=not-a-number")


@pytest.mark.django_db
def test_event_list_filtered_by_job(admin_client):
    job, other = JobFactory(), JobFactory()
    mine = JobEventFactory(job=job)
    JobEventFactory(job=other)
    assert _listed(admin_client, "downloads_jobevent", f"?job__id__exact={job.pk}") == {mine.pk}


@pytest.mark.django_db
def test_event_of_deleted_job_still_lists(admin_client):
    job = JobFactory()
    event = JobEventFactory(job=job)
    Job.objects.filter(pk=job.pk).delete()
    body = admin_client.get(reverse("admin:downloads_jobevent_changelist")).content.decode()
    assert f"#{job.pk} (deleted)" in body
    assert event.pk in _listed(admin_client, "downloads_jobevent", "")


# --- blocklist --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_block_info_hash_through_the_add_form(admin_client, admin_user):
    response = admin_client.post(
        reverse("admin:downloads_blockedinfohash_add"), {"info_hash": BLOCKED_HASH.upper(), "reason": "DMCA"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    blocked = BlockedInfoHash.objects.get()
    assert blocked.info_hash_hmac == keyed_hash(BLOCKED_HASH)
    assert blocked.info_hash == BLOCKED_HASH and blocked.created_by == admin_user and blocked.reason == "DMCA"
    assert AuditLog.objects.filter(action="blocklist.add").count() == 1
    assert not AuditLog.objects.filter(action="admin.add").exists()  # the service's row is the one
    assert _listed(admin_client, "downloads_blockedinfohash", f"?q={BLOCKED_HASH}") == {blocked.pk}


@pytest.mark.django_db
def test_block_form_rejects_a_bad_hash(admin_client):
    response = admin_client.post(reverse("admin:downloads_blockedinfohash_add"), {"info_hash": "xyz", "reason": ""})
    assert response.status_code == 200
    assert "40-character hex" in response.content.decode()
    assert not BlockedInfoHash.objects.exists()


@pytest.mark.django_db
def test_unblocking_is_audited(admin_client, admin_user):
    blocked = services.block_info_hash(admin_user, BLOCKED_HASH, "x")
    response = admin_client.post(reverse("admin:downloads_blockedinfohash_delete", args=[blocked.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not BlockedInfoHash.objects.exists()
    row = AuditLog.objects.get(action="blocklist.remove", target_id=str(blocked.pk))
    assert row.actor == admin_user and row.metadata["reason"] == "x" and BLOCKED_HASH not in str(row.metadata)
    assert not AuditLog.objects.filter(action="admin.delete").exists()  # one row, the service's


# --- users, keys, plans, audit log -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_disable_and_enable_users_actions(admin_client, admin_user):
    target = UserFactory(email="target@example.com")
    messages = _action(admin_client, "accounts_user", "disable_users", [target.pk, admin_user.pk])
    target.refresh_from_db()
    admin_user.refresh_from_db()
    assert not target.is_active and admin_user.is_active
    assert "Disabled: 1." in messages
    assert any("you cannot disable yourself" in m for m in messages)
    assert AuditLog.objects.filter(action="user.disable", target_id=str(target.pk), actor=admin_user).exists()

    messages = _action(admin_client, "accounts_user", "enable_users", [target.pk])
    target.refresh_from_db()
    assert target.is_active and "Enabled: 1." in messages


@pytest.mark.django_db
def test_add_user_with_email_and_password_twice(admin_client):
    password = "a sturdy passphrase 42"
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {"email": "New.Person@Example.com", "password1": password, "password2": password},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(email="new.person@example.com")
    assert user.check_password(password)
    assert AuditLog.objects.filter(action="admin.add", target_id=str(user.pk)).exists()


@pytest.mark.django_db
def test_add_user_refuses_an_existing_email_in_any_case(admin_client, user):
    password = "a sturdy passphrase 42"
    response = admin_client.post(
        reverse("admin:accounts_user_add"), {"email": user.email.upper(), "password1": password, "password2": password}
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


@pytest.mark.django_db
def test_user_change_view_has_no_username_and_no_key_hash(admin_client, user):
    key = ApiKeyFactory(user=user, raw="flt_" + "k" * 40)
    PlanAssignmentFactory(user=user)
    response = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="username"' not in body and 'name="email"' in body
    assert key.prefix in body and key.key_hash not in body
    assert 'name="is_active"' not in body  # changed only through the audited actions


@pytest.mark.django_db
def test_editing_a_user_is_audited(admin_client, user):
    url = reverse("admin:accounts_user_change", args=[user.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions")}
    data.update({"role": "admin", "last_login_0": "", "date_joined_0": ""})
    for prefix in ("plan_assignments", "api_keys"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.role == "admin" and user.is_staff
    assert AuditLog.objects.filter(action="admin.change", target_id=str(user.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_revoke_api_keys_action(admin_client, user):
    key = ApiKeyFactory(user=user, raw="flt_" + "a" * 40)
    revoked = ApiKeyFactory(user=user, raw="flt_" + "b" * 40, revoked_at=timezone.now())
    messages = _action(admin_client, "accounts_apikey", "revoke", [key.pk, revoked.pk])
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert "Revoked: 1." in messages and any("already revoked" in m for m in messages)


@pytest.mark.django_db
def test_plan_assignment_added_through_the_billing_service(admin_client, user):
    plan = PlanFactory(name="Gold")
    add_url = reverse("admin:billing_planassignment_add")
    assert admin_client.get(add_url + f"?user={user.pk}").status_code == 200
    response = admin_client.post(
        add_url, {"user": user.pk, "plan": plan.pk, "starts_at_0": "2020-01-01", "starts_at_1": "00:00:00"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert PlanAssignment.objects.get(user=user).plan == plan
    assert AuditLog.objects.filter(action="plan.assign", target_id=str(user.pk)).count() == 1
    row = admin_client.get(reverse("admin:accounts_user_changelist") + "?q=alice").content.decode()
    assert "Gold" in row  # the "Plan" column shows the current plan


@pytest.mark.django_db
def test_plan_list_shows_limits_human_readable(admin_client):
    PlanFactory(name="Tiny", max_storage_bytes=10 * 2**30, monthly_transfer_bytes=0)
    body = admin_client.get(reverse("admin:billing_plan_changelist")).content.decode()
    assert "10.0\xa0GB" in body and "unlimited" in body


@pytest.mark.django_db
def test_audit_log_is_read_only(admin_client, admin_user):
    entry = record_audit("test.thing", actor=admin_user)
    assert admin_client.get(reverse("admin:accounts_auditlog_add")).status_code == 403
    change = reverse("admin:accounts_auditlog_change", args=[entry.pk])
    assert admin_client.get(change).status_code == 200  # viewable
    assert admin_client.post(change, {"action": "forged"}).status_code == 403
    assert admin_client.get(reverse("admin:accounts_auditlog_delete", args=[entry.pk])).status_code == 403
    assert AuditLog.objects.get(pk=entry.pk).action == "test.thing"


@pytest.mark.django_db
def test_non_staff_cannot_open_the_console(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:downloads_job_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- the paginator ----------------------------------------------------------------------------------


class _SmallCap(CappedCountPaginator):
    cap = 5


@pytest.mark.django_db(transaction=True)
def test_capped_paginator_never_counts_past_the_cap(user):
    for _ in range(8):
        JobEventFactory(job=JobFactory(user=user))
    filtered = JobEvent.objects.filter(kind="message")
    with CaptureQueriesContext(connection) as queries:
        assert _SmallCap(filtered, 2).count == 5
    assert [q["sql"] for q in queries if "COUNT" in q["sql"] and "LIMIT 5" not in q["sql"]] == []
    assert _SmallCap(JobEvent.objects.filter(kind="progress"), 2).count == 0
    assert CappedCountPaginator(filtered, 2).count == 8  # under the cap the count is exact

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE downloads_jobevent")
        with CaptureQueriesContext(connection) as queries:
            assert _SmallCap(JobEvent.objects.all(), 2).count == 8  # the planner's estimate
        assert not any("COUNT" in q["sql"] for q in queries)
    else:
        assert _SmallCap(JobEvent.objects.all(), 2).count == 5
