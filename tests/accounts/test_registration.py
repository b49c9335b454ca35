import re

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse

from accounts import services
from accounts.models import AuditLog, User
from config.errors import DomainError
from tests.accounts.factories import UserFactory

PASSWORD = "a sturdy passphrase 42"


def _link(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


@pytest.mark.django_db
def test_register_creates_user_logs_in_sends_email_and_redirects_to_policy(client, mailoutbox):
    response = client.post(
        reverse("accounts:register"),
        {"email": "New.Person@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:policy")
    user = User.objects.get(email="new.person@example.com")
    assert user.check_password(PASSWORD)
    assert not user.email_verified
    assert not user.has_accepted_policy
    assert client.session["_auth_user_id"] == str(user.pk)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new.person@example.com"]
    assert _link(mailoutbox[0]).startswith("http://testserver/accounts/verify/")
    audit = AuditLog.objects.get(action="user.register")
    assert audit.actor == user and audit.target_id == str(user.pk)
    assert PASSWORD not in str(audit.metadata)


@pytest.mark.django_db
def test_register_rejects_taken_email_and_mismatched_passwords(client, user, mailoutbox):
    response = client.post(
        reverse("accounts:register"), {"email": "ALICE@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert 'aria-describedby="id_email_error"' in response.content.decode()

    response = client.post(
        reverse("accounts:register"), {"email": "bob@example.com", "password1": PASSWORD, "password2": PASSWORD + "x"}
    )
    assert response.status_code == 200
    assert not User.objects.filter(email="bob@example.com").exists()
    assert mailoutbox == []


@pytest.mark.django_db
def test_register_applies_password_validators(client):
    response = client.post(
        reverse("accounts:register"), {"email": "bob@example.com", "password1": "short", "password2": "short"}
    )
    assert response.status_code == 200
    assert 'aria-invalid="true"' in response.content.decode()
    assert not User.objects.filter(email="bob@example.com").exists()


@pytest.mark.django_db
def test_registration_closed_is_404(client, settings):
    settings.REGISTRATION_OPEN = False
    assert client.get(reverse("accounts:register")).status_code == 404
    response = client.post(
        reverse("accounts:register"), {"email": "bob@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 404
    assert not User.objects.filter(email="bob@example.com").exists()


@pytest.mark.django_db
def test_register_user_service_refuses_duplicates_and_weak_passwords(user):
    with pytest.raises(DomainError) as exc:
        services.register_user("Alice@Example.com", PASSWORD)
    assert exc.value.code == "email_taken"
    with pytest.raises(DomainError) as exc:
        services.register_user("bob@example.com", "password")
    assert exc.value.code == "invalid_password"


@pytest.mark.django_db
def test_verify_link_works_once(client, mailoutbox):
    form = {"email": "bob@example.com", "password1": PASSWORD, "password2": PASSWORD}
    client.post(reverse("accounts:register"), form)
    link = _link(mailoutbox[0])

    response = client.get(link)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:policy")  # logged in, policy not accepted yet
    assert User.objects.get(email="bob@example.com").email_verified
    assert AuditLog.objects.filter(action="user.verify_email").count() == 1

    client.logout()
    assert client.get(link).status_code == 400
    assert AuditLog.objects.filter(action="user.verify_email").count() == 1


@pytest.mark.django_db
def test_verify_rejects_bad_token_and_bad_uid(client):
    user = UserFactory(email_verified=False)
    uidb64 = services.verification_path(user).split("/")[-3]
    assert client.get(reverse("accounts:verify", kwargs={"uidb64": uidb64, "token": "abc-123"})).status_code == 400
    assert client.get(reverse("accounts:verify", kwargs={"uidb64": "zzzz", "token": "abc-123"})).status_code == 400
    user.refresh_from_db()
    assert not user.email_verified


@pytest.mark.django_db
def test_password_reset_token_is_not_a_verification_token(client):
    from django.contrib.auth.tokens import default_token_generator

    user = UserFactory(email_verified=False)
    uidb64 = services.verification_path(user).split("/")[-3]
    token = default_token_generator.make_token(user)
    assert services.verify_email(uidb64, token) is None


@pytest.mark.django_db
def test_resend_is_post_only_and_throttled(client, mailoutbox):
    user = UserFactory(email_verified=False)
    client.force_login(user)
    assert client.get(reverse("accounts:verify_resend")).status_code == 405

    client.post(reverse("accounts:verify_resend"))
    client.post(reverse("accounts:verify_resend"))

    assert len(mailoutbox) == 1
    response = client.get(_link(mailoutbox[0]))
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email_verified


@pytest.mark.django_db
def test_check_can_create_jobs_requires_verified_email_only_when_configured(settings):
    user = UserFactory(email_verified=False)
    settings.REQUIRE_EMAIL_VERIFICATION = False
    services.check_can_create_jobs(user)

    settings.REQUIRE_EMAIL_VERIFICATION = True
    with pytest.raises(DomainError) as exc:
        services.check_can_create_jobs(user)
    assert exc.value.code == "email_not_verified"
    assert exc.value.http_status == 403

    user.email_verified = True
    services.check_can_create_jobs(user)


class BrokenEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("smtp down")


@pytest.mark.django_db
def test_register_survives_a_mail_server_outage_and_resend_works_later(client, settings, mailoutbox):
    settings.EMAIL_BACKEND = "tests.accounts.test_registration.BrokenEmailBackend"
    form = {"email": "bob@example.com", "password1": PASSWORD, "password2": PASSWORD}

    response = client.post(reverse("accounts:register"), form, follow=True)

    assert response.redirect_chain[-1][0] == reverse("accounts:policy")
    assert "could not send the verification email" in response.content.decode()
    assert User.objects.filter(email="bob@example.com").exists()

    # A failed send does not count against the resend throttle.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = client.post(reverse("accounts:verify_resend"), {"next": reverse("accounts:policy")}, follow=True)
    assert "We sent a new verification link" in response.content.decode()
    assert len(mailoutbox) == 1
