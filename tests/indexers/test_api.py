"""The indexers and search API: CRUD with write-only credentials, test, search, grab; isolation; secrets never
in a response, an audit row or a log line."""

from __future__ import annotations

import json
import logging

import pytest

from accounts.models import AuditLog
from downloads.models import Job
from indexers.models import Indexer, JobSource, SearchResult
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.indexers.conftest import mam_indexer, nyaa_indexer, torznab_indexer
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10)).plan


def test_create_with_credentials_never_echoes_them(api_client, mam, user):
    secret = mam.new_session()
    response = api_client.post("/api/v1/indexers/", {"name": "MAM", "kind": "myanonamouse", "url": mam.base_url,
                                                     "credentials": {"mam_id": secret}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert secret not in response.content.decode() and body["credential_names"] == ["mam_id"]
    assert body["privacy"] == "private" and body["request_interval"] == 2.0  # the kind's defaults
    indexer = Indexer.objects.get(pk=body["id"])
    assert indexer.secrets == {"mam_id": secret} and indexer.owner == user
    assert secret not in json.dumps(list(AuditLog.objects.values("action", "metadata")), default=str)
    listing = api_client.get("/api/v1/indexers/")
    assert secret not in listing.content.decode()


def test_credentials_of_another_kind_are_refused(api_client):
    response = api_client.post("/api/v1/indexers/", {"name": "Y", "kind": "yts", "credentials": {"apikey": "x"}},
                               format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_credentials"


def test_update_keeps_blank_credentials_and_resets_health(api_client, user):
    indexer = IndexerFactory(owner=user, consecutive_failures=3, last_error="boom")
    response = api_client.patch(f"/api/v1/indexers/{indexer.pk}/", {"credentials": {"apikey": ""}, "priority": 3},
                                format="json")
    assert response.status_code == 200, response.content
    indexer.refresh_from_db()
    assert indexer.secrets == {"apikey": "k"} and indexer.priority == 3
    api_client.patch(f"/api/v1/indexers/{indexer.pk}/", {"credentials": {"apikey": "new"}}, format="json")
    indexer.refresh_from_db()
    assert indexer.secrets == {"apikey": "new"} and indexer.consecutive_failures == 0


def test_test_action_shows_capabilities_account_and_latency(api_client, mam, user):
    indexer = mam_indexer(mam, user)
    body = api_client.post(f"/api/v1/indexers/{indexer.pk}/test/").json()
    assert body["ok"] and body["latency_ms"] > 0 and body["account"]["unsatisfied"] == 3
    assert "book" in body["capabilities"]["searching"]
    indexer.refresh_from_db()
    assert indexer.account_status["class"] == "Power User"


def test_test_of_an_expired_session_says_so(api_client, mam, user):
    indexer = mam_indexer(mam, user)
    mam.expire_all()
    body = api_client.post(f"/api/v1/indexers/{indexer.pk}/test/").json()
    assert not body["ok"] and body["code"] == "session_expired"
    shown = api_client.get(f"/api/v1/indexers/{indexer.pk}/").json()
    assert shown["health"].startswith("Session expired") and shown["in_backoff"]


def test_search_endpoint_and_repeated_keys(api_client, jackett, nyaa, user):
    jackett.add("Book One m4b", category=3030)
    nyaa.add("Book One anime")
    first = torznab_indexer(jackett, user)
    torznab_indexer(jackett, user, name="Second copy")
    response = api_client.get(f"/api/v1/search/?q=book&indexer_ids={first.pk}&categories=3030&categories=7020")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["title"] for r in body["results"]] == ["Book One m4b"] and body["errors"] == []
    assert body["results"][0]["quality"] == {"format": "m4b"}
    text = response.content.decode()
    assert jackett.apikey not in text and "download_url" not in text and "magnet" not in text.replace("has_magnet", "")


def test_shared_indexers_are_listed_but_not_editable(api_client, nyaa):
    shared = nyaa_indexer(nyaa, None, name="Operator's")
    assert [i["shared"] for i in api_client.get("/api/v1/indexers/").json()] == [True]
    assert api_client.patch(f"/api/v1/indexers/{shared.pk}/", {"priority": 1}, format="json").status_code == 404
    assert api_client.delete(f"/api/v1/indexers/{shared.pk}/").status_code == 404


@pytest.mark.parametrize(("method", "url"), [
    ("get", "/api/v1/indexers/{indexer}/"), ("patch", "/api/v1/indexers/{indexer}/"),
    ("delete", "/api/v1/indexers/{indexer}/"), ("post", "/api/v1/indexers/{indexer}/test/"),
    ("get", "/api/v1/search/{result}/"), ("post", "/api/v1/search/{result}/grab/"),
])
def test_another_users_indexer_or_result_is_404(api_client, other_user, nyaa, method, url):
    nyaa.add("Mallory's")
    theirs = nyaa_indexer(nyaa, other_user)
    from indexers import services

    [result] = services.search(other_user, "mallory").results
    before = (Indexer.objects.get(pk=theirs.pk).updated_at, Job.objects.count(), len(nyaa.requests))
    response = getattr(api_client, method)(url.format(indexer=theirs.pk, result=result.pk), {}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (Indexer.objects.get(pk=theirs.pk).updated_at, Job.objects.count(), len(nyaa.requests)) == before


def test_grab_fetches_with_credentials_and_remembers_the_source(api_client, mam, user, plan, caplog):
    tid = mam.add("Project Hail Mary")
    indexer = mam_indexer(mam, user)
    [result] = api_client.get("/api/v1/search/?q=hail").json()["results"]
    caplog.set_level(logging.DEBUG)
    response = api_client.post(f"/api/v1/search/{result['id']}/grab/", {"backend": "engine"}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    source = JobSource.objects.get(job=job)
    assert source.indexer == indexer and source.result_id == result["id"]
    assert source.guid == f"https://www.myanonamouse.net/t/{tid}"
    assert job.torrent and job.is_private
    cookie = mam.paths("/tor/download.php")[0]["headers"]["Cookie"]
    indexer.refresh_from_db()
    everything = response.content.decode() + caplog.text + json.dumps(
        list(AuditLog.objects.values("metadata")), default=str)
    assert cookie.split("=", 1)[1] not in everything and indexer.secrets["mam_id"] not in everything
    assert "download.php" not in everything


def test_grab_of_an_unreachable_tracker_is_502_and_creates_nothing(api_client, mam, user, plan):
    mam.add("Gone")
    mam_indexer(mam, user)
    [result] = api_client.get("/api/v1/search/?q=gone").json()["results"]
    mam.fail_next(500, "down")
    response = api_client.post(f"/api/v1/search/{result['id']}/grab/", {}, format="json")
    assert response.status_code == 502 and response.json()["code"] == "indexer_download_failed"
    assert Job.objects.count() == 0 and JobSource.objects.count() == 0


def test_grab_refused_by_the_account_never_reaches_the_tracker(api_client, mam, user):
    mam.add("Policy")
    mam_indexer(mam, user)
    [result] = api_client.get("/api/v1/search/?q=policy").json()["results"]
    user.accepted_policy_version = 0
    user.save()
    response = api_client.post(f"/api/v1/search/{result['id']}/grab/", {}, format="json")
    assert response.status_code == 403 and mam.paths("/tor/download.php") == []
    assert SearchResult.objects.count() == 1


def test_huge_result_id_is_404(api_client):
    assert api_client.get(f"/api/v1/search/{2**70}/").status_code == 404
