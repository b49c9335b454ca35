import pytest
from django.urls import reverse

from accounts.models import AuditLog
from config.errors import DomainError
from downloads import services as downloads
from tests.accounts.factories import UserFactory

MAGNET = "magnet:?xt=urn:btih:" + "b" * 40 + "&dn=Policy"


@pytest.fixture
def newcomer(db):
    return UserFactory(email="new@example.com", accepted_policy_version=0)


@pytest.mark.django_db
def test_add_magnet_refused_until_policy_accepted(client, newcomer, settings):
    with pytest.raises(DomainError) as exc:
        downloads.add_magnet(newcomer, MAGNET)
    assert exc.value.code == "policy_not_accepted"

    client.force_login(newcomer)
    response = client.post(reverse("accounts:policy"))
    assert response.status_code == 302
    assert response["Location"] == reverse("downloads:dashboard")

    newcomer.refresh_from_db()
    assert newcomer.accepted_policy_version == settings.ACCEPTABLE_USE_VERSION
    assert newcomer.accepted_policy_at is not None
    row = AuditLog.objects.get(action="user.accept_policy")
    assert row.actor == newcomer and row.metadata == {"version": settings.ACCEPTABLE_USE_VERSION}
    job = downloads.add_magnet(newcomer, MAGNET)
    assert job.user == newcomer


@pytest.mark.django_db
def test_new_policy_version_requires_accepting_again(client, user, settings):
    settings.ACCEPTABLE_USE_VERSION += 1
    client.force_login(user)
    html = client.get(reverse("accounts:policy")).content.decode()
    assert "I accept" in html
    with pytest.raises(DomainError):
        downloads.add_magnet(user, MAGNET)


@pytest.mark.django_db
def test_policy_redirects_to_safe_next_only(client, newcomer):
    client.force_login(newcomer)
    response = client.post(reverse("accounts:policy"), {"next": "/usage/"})
    assert response["Location"] == "/usage/"
    response = client.post(reverse("accounts:policy"), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("downloads:dashboard")
    response = client.post(reverse("accounts:policy"), {"next": "//evil.example/"})
    assert response["Location"] == reverse("downloads:dashboard")


@pytest.mark.django_db
def test_policy_page_needs_login_and_shows_form(client, newcomer):
    response = client.get(reverse("accounts:policy"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))

    client.force_login(newcomer)
    html = client.get(reverse("accounts:policy") + "?next=/usage/").content.decode()
    assert "I accept" in html
    assert 'name="next" value="/usage/"' in html
