import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey, AuditLog, hash_api_key
from tests.accounts.factories import ApiKeyFactory

RAW_KEY_RE = re.compile(r"flt_[A-Za-z0-9_-]{43}")


def _key(user, **kwargs) -> ApiKey:
    # factories.ApiKeyFactory's Params.raw defaults to None, so a raw key has to be passed explicitly.
    return ApiKeyFactory(user=user, raw=f"flt_test{ApiKey.objects.count():040d}", **kwargs)


# --- the page -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_creates_key_and_shows_it_once(client, user):
    client.force_login(user)
    response = client.post(reverse("accounts:api_keys"), {"name": "laptop"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = RAW_KEY_RE.search(response.content.decode()).group(0)
    key = ApiKey.objects.get(user=user)
    assert key.name == "laptop"
    assert key.key_hash == hash_api_key(raw)
    assert key.prefix == raw[:12]
    assert not ApiKey.objects.filter(key_hash=raw).exists()
    assert raw not in str(list(AuditLog.objects.values_list("metadata", flat=True)))
    assert raw not in str(dict(client.session))

    listing = client.get(reverse("accounts:api_keys")).content.decode()
    assert raw not in listing
    assert key.prefix in listing and "laptop" in listing


@pytest.mark.django_db
def test_page_rejects_blank_name_with_described_error(client, user):
    client.force_login(user)
    response = client.post(reverse("accounts:api_keys"), {"name": ""})
    assert response.status_code == 200
    assert 'aria-describedby="id_name_helptext id_name_error"' in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_page_revoke_asks_for_confirmation_then_revokes(client, user):
    key = _key(user)
    client.force_login(user)
    url = reverse("accounts:api_key_revoke", args=[key.pk])

    assert "Revoke key" in client.get(url).content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None

    response = client.post(url)
    assert response["Location"] == reverse("accounts:api_keys")
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.django_db
def test_page_cannot_revoke_another_users_key(client, user, other_user):
    key = _key(other_user)
    client.force_login(user)
    assert client.post(reverse("accounts:api_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.django_db
def test_page_lists_only_own_keys(client, user, other_user):
    _key(user, name="mine")
    _key(other_user, name="theirs")
    client.force_login(user)
    html = client.get(reverse("accounts:api_keys")).content.decode()
    assert "mine" in html and "theirs" not in html


# --- the API --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_create_returns_key_once_and_stores_only_hash(api_client, user):
    response = api_client.post("/api/v1/api-keys/", {"name": "script"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "key"}
    assert RAW_KEY_RE.fullmatch(body["key"])
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash == hash_api_key(body["key"])

    listing = api_client.get("/api/v1/api-keys/").json()
    assert [k["id"] for k in listing["results"]] == [key.pk]
    assert "key" not in listing["results"][0]


@pytest.mark.django_db
def test_api_create_requires_a_name(api_client):
    response = api_client.post("/api/v1/api-keys/", {"name": "  "}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_both_headers_authenticate_and_touch_last_used(user, header):
    key, raw = services.create_api_key(user, "cli")
    value = f"Token {raw}" if header == "HTTP_AUTHORIZATION" else raw
    client = APIClient()

    response = client.get("/api/v1/me/", **{header: value})

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": "alice@example.com",
        "role": "user",
        "email_verified": True,
        "has_accepted_policy": True,
    }
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.django_db
def test_revoked_key_is_401(api_client, user):
    key, raw = services.create_api_key(user, "cli")
    assert api_client.delete(f"/api/v1/api-keys/{key.pk}/").status_code == 204

    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.django_db
def test_key_of_disabled_user_is_401(user, admin_user):
    _, raw = services.create_api_key(user, "cli")
    services.set_user_active(admin_user, user, False)
    assert APIClient().get("/api/v1/me/", HTTP_X_API_KEY=raw).status_code == 401


@pytest.mark.django_db
def test_delete_other_users_key_is_404(api_client, other_user):
    key = _key(other_user)
    assert api_client.delete(f"/api/v1/api-keys/{key.pk}/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not AuditLog.objects.filter(action="api_key.revoke").exists()


@pytest.mark.django_db
def test_unauthenticated_api_is_401():
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_create_and_revoke_are_audited_without_the_key(api_client, user):
    body = api_client.post("/api/v1/api-keys/", {"name": "script"}, format="json").json()
    api_client.delete(f"/api/v1/api-keys/{body['id']}/")
    api_client.delete(f"/api/v1/api-keys/{body['id']}/")  # revoking again changes nothing

    created = AuditLog.objects.get(action="api_key.create")
    revoked = AuditLog.objects.get(action="api_key.revoke")
    for row in (created, revoked):
        assert row.actor == user
        assert row.target_type == "accounts.apikey" and row.target_id == str(body["id"])
        assert body["key"] not in str(row.metadata)


@pytest.mark.django_db
def test_api_key_list_query_count(api_client, user, django_assert_max_num_queries):
    for n in range(5):
        _key(user, name=f"k{n}")
    with django_assert_max_num_queries(2):
        response = api_client.get("/api/v1/api-keys/")
    assert len(response.json()["results"]) == 5
