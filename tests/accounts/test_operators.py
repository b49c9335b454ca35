"""The `admin` role grants the operator console (staff + the Operators group) without being a superuser."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts import services
from accounts.models import AuditLog, User
from accounts.roles import OPERATORS_GROUP
from tests.accounts.factories import ApiKeyFactory, UserFactory

CONSOLE_PAGES = [
    "admin:index",
    "admin:health",
    "admin:downloads_job_changelist",
    "admin:accounts_user_changelist",
    "admin:accounts_auditlog_changelist",
    "admin:servers_torrentserver_changelist",
    "admin:seedr_seedraccount_changelist",
    "admin:billing_plan_changelist",
]


def _operator_group() -> Group:
    return Group.objects.get(name=OPERATORS_GROUP)


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONSOLE_PAGES)
def test_role_admin_who_is_not_a_superuser_opens_the_console(client, admin_user, name):
    assert not admin_user.is_superuser
    client.force_login(admin_user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert "have permission" not in response.content.decode()


@pytest.mark.django_db
def test_console_index_lists_the_operator_apps(client, admin_user):
    client.force_login(admin_user)
    body = client.get(reverse("admin:index")).content.decode()
    for label in ("Jobs", "Users", "Torrent servers", "Plans", "Audit logs"):
        assert label.lower() in body.lower()
    assert "/admin/auth/group/" not in body  # groups and permissions stay with superusers


@pytest.mark.django_db
def test_health_api_honours_the_role_through_an_admin_key(client, admin_user, user):
    ApiKeyFactory(user=admin_user, raw="flt_operator_key")
    ApiKeyFactory(user=user, raw="flt_plain_user_key")
    url = reverse("api-health")
    assert client.get(url, HTTP_AUTHORIZATION="Token flt_operator_key").status_code == 200
    assert client.get(url, HTTP_AUTHORIZATION="Token flt_plain_user_key").status_code == 403


@pytest.mark.django_db
def test_granting_and_revoking_the_role_moves_staff_and_the_group(client, user, admin_user):
    services.set_role(admin_user, user, User.Role.ADMIN)
    user.refresh_from_db()
    assert user.is_staff and _operator_group() in user.groups.all()
    assert user.has_perm("downloads.view_job") and not user.has_perm("auth.change_group")
    client.force_login(user)
    assert client.get(reverse("admin:downloads_job_changelist")).status_code == 200

    services.set_role(admin_user, user, User.Role.USER)
    user = User.objects.get(pk=user.pk)  # fresh permission cache
    assert not user.is_staff and not user.groups.exists()
    client.force_login(user)
    assert client.get(reverse("admin:downloads_job_changelist")).status_code == 302  # to the admin login
    rows = AuditLog.objects.filter(action="user.role", target_id=str(user.pk), actor=admin_user)
    assert [r.metadata["role"] for r in rows.order_by("id")] == ["admin", "user"]


@pytest.mark.django_db
def test_role_changed_in_the_console_goes_through_the_service(client, admin_user, user):
    client.force_login(admin_user)
    url = reverse("admin:accounts_user_change", args=[user.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions")}
    data.update({"role": "admin", "last_login_0": "", "date_joined_0": ""})
    for prefix in ("plan_assignments", "api_keys"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    assert client.post(url, data).status_code == 302
    user.refresh_from_db()
    assert user.role == "admin" and user.is_staff and _operator_group() in user.groups.all()
    assert AuditLog.objects.filter(action="user.role", target_id=str(user.pk), actor=admin_user).count() == 1


@pytest.mark.django_db
def test_an_operator_cannot_make_anyone_a_superuser_or_edit_one(client, admin_user, user):
    boss = UserFactory(email="root@example.com", is_superuser=True)
    client.force_login(admin_user)
    body = client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert 'name="is_superuser"' not in body and 'name="groups"' not in body
    boss_url = reverse("admin:accounts_user_change", args=[boss.pk])
    assert 'name="email"' not in client.get(boss_url).content.decode()  # view only
    assert client.post(boss_url, {"email": "mine@example.com"}).status_code == 403
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 403
    boss.refresh_from_db()
    assert boss.email == "root@example.com"


@pytest.mark.django_db
def test_group_holds_every_operator_model_permission_and_nothing_of_auth():
    codenames = set(_operator_group().permissions.values_list("content_type__app_label", "codename"))
    for label in ("accounts", "billing", "downloads", "seedr", "servers"):
        for model in apps.get_app_config(label).get_models():
            assert (label, f"view_{model._meta.model_name}") in codenames
    assert ("servers", "delete_torrentserver") in codenames
    assert not {app for app, _ in codenames} & {"auth", "contenttypes", "sessions", "admin"}


@pytest.mark.django_db
def test_data_migration_puts_existing_role_admins_in_the_group():
    """Rows written before the group existed (role set, no membership): the migration catches them up."""
    Group.objects.filter(name=OPERATORS_GROUP).delete()
    old_admin = UserFactory(email="old-admin@example.com", role="admin")
    plain = UserFactory(email="plain@example.com")
    migration = importlib.import_module("accounts.migrations.0002_operators_group")
    migration.create_group(apps, None)
    assert list(_operator_group().user_set.all()) == [old_admin]
    assert _operator_group().permissions.filter(codename="view_job").exists()
    assert not plain.groups.exists()
