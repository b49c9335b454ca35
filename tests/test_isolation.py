"""Isolation matrix: for every user-facing endpoint that takes an object id, another user's object is a 404
and stays untouched; lists never show it."""

import pytest
from django.test import Client

from accounts.models import ApiKey
from audiobooks.models import AudiobookJob
from downloads.models import Job, JobEvent, JobFile, PreloadItem, Status
from streaming import shares
from streaming.models import Share
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
    ("delete", "/api/v1/files/{file}/"),
    ("get", "/api/v1/stream/{job}/{file}/stats/"),
    ("post", "/api/v1/shares/{share}/revoke/"),
    ("get", "/api/v1/audiobooks/{book}/"),
    ("post", "/api/v1/audiobooks/{book}/retry/"),
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
    jobfile = JobFileFactory(job=job, path="film.mp4", mime_type="video/mp4")  # playable: the stream routes pick it
    key = ApiKeyFactory(user=other_user)
    share = shares.create_share(other_user, job_id=job.pk)
    book = AudiobookJob.objects.create(job=job, title="Mallory's book", state=AudiobookJob.State.FAILED)
    return {"job": job.pk, "batch": batch.pk, "key": key.pk, "file": jobfile.pk, "share": share.pk,
            "book": book.pk}


def _snapshot(ids):
    job = Job.objects.get(pk=ids["job"])
    return (job.status, job.updated_at, JobEvent.objects.count(), ApiKey.objects.get(pk=ids["key"]).revoked_at,
            Share.objects.get(pk=ids["share"]).revoked_at, Share.objects.count(),
            AudiobookJob.objects.get(pk=ids["book"]).state, PreloadItem.objects.count(), JobFile.objects.count())


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
@pytest.mark.parametrize("body", [{"job": "{job}"}, {"job": "{mine}", "file": "{file}"}], ids=["job", "file"])
def test_a_share_of_another_users_job_or_file_is_404_and_nothing_is_made(api_client, user, victims, body):
    ids = {**victims, "mine": JobFactory(user=user, status=Status.COMPLETED).pk}
    before = _snapshot(victims)
    response = api_client.post("/api/v1/shares/", {k: int(v.format(**ids)) for k, v in body.items()},
                               format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert _snapshot(victims) == before


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/stream/{job}/", "/api/v1/stream/{job}/{file}/"], ids=["job", "file"])
def test_streaming_another_users_job_with_an_api_key_is_404(user, victims, url):
    """The stream routes are plain Django views with their own authentication (session, API key, stream link);
    the same request for a job of the caller's own reaches the engine (503 here, none runs)."""
    raw = "flt_isolation" + "k" * 36
    ApiKeyFactory(user=user, raw=raw)
    response = Client().get(url.format(**victims), HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_the_viewport_ignores_another_users_job(api_client, victims):
    before = _snapshot(victims)
    response = api_client.post("/api/v1/ui/viewport", {"items": [{"job": victims["job"], "priority": "visible"}]},
                               format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"queued": []}
    assert _snapshot(victims) == before


@pytest.mark.django_db
def test_lists_show_only_own_objects(api_client, user, victims):
    mine = JobFactory(user=user)
    assert [j["id"] for j in api_client.get("/api/v1/jobs/").json()["results"]] == [mine.pk]
    assert api_client.get(f"/api/v1/jobs/?batch={victims['batch']}").json()["results"] == []
    assert api_client.get("/api/v1/batches/").json()["results"] == []
    keys = api_client.get("/api/v1/api-keys/").json()
    assert victims["key"] not in [k["id"] for k in keys.get("results", keys)]
    assert api_client.get("/api/v1/shares/").json() == []
    assert api_client.get(f"/api/v1/shares/?job={victims['job']}").json() == []
    books = api_client.get("/api/v1/audiobooks/").json()
    assert victims["book"] not in [b["id"] for b in books.get("results", books)]


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
