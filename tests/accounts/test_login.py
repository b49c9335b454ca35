import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

import accounts.signals  # noqa: F401  (AccountsConfig.ready() imports it; explicit here so the audit tests stand alone)
from accounts import services
from accounts.models import AuditLog
from tests.accounts.factories import UserFactory

PASSWORD = "correct horse battery staple"


def _login(client, email, password, **extra):
    return client.post(reverse("accounts:login"), {"username": email, "password": password}, **extra)


@pytest.mark.django_db
def test_login_with_email_redirects_and_audits(client, user):
    response = _login(client, "Alice@Example.com", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("downloads:dashboard")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditLog.objects.filter(action="user.login", actor=user).count() == 1


@pytest.mark.django_db
def test_login_sends_user_without_policy_to_policy_then_on(client):
    UserFactory(email="new@example.com", accepted_policy_version=0)
    response = _login(client, "new@example.com", PASSWORD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:policy") + "?next=")


@pytest.mark.django_db
def test_failed_login_shows_error_tied_to_fields_and_audits_without_password(client, user):
    response = _login(client, "alice@example.com", "wrong password")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="form-errors"' in html
    assert 'aria-describedby="form-errors"' in html
    row = AuditLog.objects.get(action="user.login_failed")
    assert row.metadata == {"email": "alice@example.com"}
    assert "wrong password" not in str(row.metadata)


@pytest.mark.django_db
def test_lockout_after_five_failures_even_with_right_password(client, user, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    statuses = [_login(client, "alice@example.com", f"wrong {n}").status_code for n in range(5)]
    assert statuses[:4] == [200] * 4
    assert statuses[4] == 429

    response = _login(client, "alice@example.com", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_lockout_counts_case_variants_of_one_address_together(client, user):
    variants = ["alice@example.com", "ALICE@example.com", "Alice@Example.com", "alice@EXAMPLE.com", "aLiCe@example.com"]
    for email in variants:
        _login(client, email, "wrong")
    assert _login(client, "ALICE@EXAMPLE.COM", PASSWORD).status_code == 429


@pytest.mark.django_db
def test_lockout_is_per_address_and_ip(client, user, other_user):
    for _ in range(5):
        _login(client, "alice@example.com", "wrong")
    assert _login(client, "mallory@example.com", PASSWORD).status_code == 302
    other_ip = Client(REMOTE_ADDR="10.0.0.9")
    assert _login(other_ip, "alice@example.com", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_session_cookie_is_http_only(client, user):
    response = _login(client, "alice@example.com", PASSWORD)
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_login_form_enforces_csrf(user):
    client = Client(enforce_csrf_checks=True)
    assert _login(client, "alice@example.com", PASSWORD).status_code == 403

    page = client.get(reverse("accounts:login"))
    token = page.cookies["csrftoken"].value
    response = client.post(
        reverse("accounts:login"), {"username": "alice@example.com", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_login_page_is_accessible_markup(client):
    html = client.get(reverse("accounts:login")).content.decode()
    assert '<label for="id_username">Email' in html
    assert '<label for="id_password">Password' in html
    assert 'name="username"' in html and 'type="email"' in html


@pytest.mark.django_db
def test_login_ignores_offsite_next(client, user):
    response = client.post(
        reverse("accounts:login") + "?next=https://evil.example/",
        {"username": "alice@example.com", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("downloads:dashboard")


@pytest.mark.django_db
def test_logout_is_post_only(client, user):
    client.force_login(user)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="user.logout", actor=user).exists()


@pytest.mark.django_db
def test_disabling_a_user_ends_their_sessions_and_audits(
    client, user, other_user, admin_user, django_capture_on_commit_callbacks
):
    client.force_login(user)
    other = Client()
    other.force_login(other_user)

    with django_capture_on_commit_callbacks(execute=True):
        services.set_user_active(admin_user, user, False)

    assert client.get(reverse("accounts:api_keys")).status_code == 302  # back to login
    assert other.get(reverse("accounts:api_keys")).status_code == 200
    remaining = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(user.pk) not in remaining and str(other_user.pk) in remaining
    row = AuditLog.objects.get(action="user.disable")
    assert row.actor == admin_user and row.target_id == str(user.pk)

    services.set_user_active(admin_user, user, True)
    user.refresh_from_db()
    assert user.is_active
    assert AuditLog.objects.filter(action="user.enable").count() == 1
