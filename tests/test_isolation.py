"""Isolation matrix: for every user-facing endpoint that takes an object id, another user's object is a 404
and stays untouched; lists never show it."""

import pytest
from django.test import Client

from accounts.models import ApiKey
from downloads.models import Job, JobEvent, Status
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import BatchFactory, JobFactory, JobFileFactory

API = [
    ("get", "/api/v1/jobs/{job}/"),
    ("delete", "/api/v1/jobs/{job}/"),
    ("post", "/api/v1/jobs/{job}/pause/"),
    ("post", "/api/v1/jobs/{job}/resume/"),
    ("post", "/api/v1/jobs/{job}/cancel/"),
    ("post", "/api/v1/jobs/{job}/retry/"),
    ("get", "/api/v1/jobs/{job}/files/"),
    ("post", "/api/v1/jobs/{job}/keep/"),
    ("get", "/api/v1/stream/play/{job}/"),
    ("get", "/api/v1/batches/{batch}/"),
    ("delete", "/api/v1/api-keys/{key}/"),
]
PAGES = [
    ("get", "/jobs/{job}/"),
    ("get", "/accounts/api-keys/{key}/revoke/"),
    ("post", "/accounts/api-keys/{key}/revoke/"),
]


@pytest.fixture
def victims(other_user):
    """Mallory's objects, in every state an action could apply to."""
    batch = BatchFactory(user=other_user)
    job = JobFactory(user=other_user, batch=batch, status=Status.PAUSED)
    JobFileFactory(job=job)
    key = ApiKeyFactory(user=other_user)
    return {"job": job.pk, "batch": batch.pk, "key": key.pk}


def _snapshot(ids):
    job = Job.objects.get(pk=ids["job"])
    return (job.status, job.updated_at, JobEvent.objects.count(), ApiKey.objects.get(pk=ids["key"]).revoked_at)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), API, ids=[f"{m} {u}" for m, u in API])
def test_api_other_users_object_is_404_and_untouched(api_client, victims, method, url):
    before = _snapshot(victims)
    response = getattr(api_client, method)(url.format(**victims), format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert _snapshot(victims) == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), PAGES, ids=[f"{m} {u}" for m, u in PAGES])
def test_pages_other_users_object_is_404_and_untouched(user, victims, method, url):
    client = Client()
    client.force_login(user)
    before = _snapshot(victims)
    assert getattr(client, method)(url.format(**victims)).status_code == 404
    assert _snapshot(victims) == before


@pytest.mark.django_db
def test_lists_show_only_own_objects(api_client, user, victims):
    mine = JobFactory(user=user)
    assert [j["id"] for j in api_client.get("/api/v1/jobs/").json()["results"]] == [mine.pk]
    assert api_client.get(f"/api/v1/jobs/?batch={victims['batch']}").json()["results"] == []
    assert api_client.get("/api/v1/batches/").json()["results"] == []
    keys = api_client.get("/api/v1/api-keys/").json()
    assert victims["key"] not in [k["id"] for k in keys.get("results", keys)]


@pytest.mark.django_db
def test_dashboard_never_renders_another_users_job(user, other_user):
    JobFactory(user=other_user, name="mallorys-secret-download")
    client = Client()
    client.force_login(user)
    assert b"mallorys-secret-download" not in client.get("/").content


@pytest.mark.django_db
def test_admin_pages_refuse_regular_users(user):
    client = Client()
    client.force_login(user)
    for url in ("/admin/downloads/job/", "/admin/health/", "/admin/accounts/auditlog/"):
        response = client.get(url)
        assert response.status_code in (302, 403, 404), url
