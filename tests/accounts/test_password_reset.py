import re

import pytest
from django.urls import reverse

from accounts.models import AuditLog

NEW_PASSWORD = "a brand new passphrase 7"


@pytest.mark.django_db
def test_password_reset_end_to_end(client, user, mailoutbox):
    other_session = type(client)()
    other_session.force_login(user)

    response = client.post(reverse("accounts:password_reset"), {"email": "ALICE@example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]
    link = re.search(r"https?://\S+", mailoutbox[0].body).group(0)

    # Django swaps the token for a session marker and redirects to a token-free URL.
    response = client.get(link)
    assert response.status_code == 302
    set_password_url = response["Location"]
    assert client.get(set_password_url).context["validlink"] is True

    response = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_complete")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert AuditLog.objects.filter(action="user.password_reset", actor=user).count() == 1

    # The link is single-use, and sessions made with the old password are gone.
    assert client.get(link, follow=True).context["validlink"] is False
    assert other_session.get(reverse("accounts:api_keys")).status_code == 302
    login = client.post(reverse("accounts:login"), {"username": "alice@example.com", "password": NEW_PASSWORD})
    assert login.status_code == 302


@pytest.mark.django_db
def test_password_reset_for_unknown_email_sends_nothing_and_looks_the_same(client, mailoutbox):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert mailoutbox == []


@pytest.mark.django_db
def test_password_reset_rejects_weak_password(client, user, mailoutbox):
    client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})
    link = re.search(r"https?://\S+", mailoutbox[0].body).group(0)
    set_password_url = client.get(link)["Location"]
    response = client.post(set_password_url, {"new_password1": "12345", "new_password2": "12345"})
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password("correct horse battery staple")
