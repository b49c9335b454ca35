import io
import json

import pytest
import torf

from downloads.models import Batch, Job, JobEvent, Status
from tests.accounts.factories import ApiKeyFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory, JobFileFactory

HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
MAGNET = f"magnet:?xt=urn:btih:{HASH}&dn=Debian+ISO&tr=udp%3A%2F%2Ftracker.example%3A1337"


def make_torrent(tmp_path, name="payload", files=None) -> bytes:
    root = tmp_path / name
    root.mkdir()
    for rel, size in (files or {"a.bin": 3000, "sub/b.bin": 5000}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    torrent = torf.Torrent(path=root, trackers=["http://127.0.0.1:6970/announce"], piece_size=16384)
    torrent.generate()
    return torrent.dump()


@pytest.mark.django_db
class TestCreate:
    def test_magnet_json_creates_queued_job(self, api_client, user):
        response = api_client.post("/api/v1/jobs/", {"magnet": MAGNET}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["status"] == "queued"
        assert body["name"] == "Debian ISO"
        assert body["backend"] == "engine"
        job = Job.objects.get(pk=body["id"])
        assert job.user == user and job.info_hash == HASH and job.magnet == MAGNET.strip()
        assert "magnet" not in body and "info_hash" not in body  # secrets never leave

    def test_torrent_upload_registers_files(self, api_client, tmp_path):
        data = make_torrent(tmp_path)
        upload = io.BytesIO(data)
        upload.name = "payload.torrent"
        response = api_client.post("/api/v1/jobs/", {"torrent": upload}, format="multipart")
        assert response.status_code == 201, response.json()
        job = Job.objects.get(pk=response.json()["id"])
        assert job.size_bytes == 8000
        assert sorted(job.files.values_list("path", flat=True)) == ["payload/a.bin", "payload/sub/b.bin"]

    @pytest.mark.parametrize(
        ("payload", "code"),
        [
            ({"magnet": "magnet:?xt=urn:btih:1234"}, "magnet_bad_hash"),
            ({"magnet": "http://example.com/x.torrent"}, "magnet_invalid"),
            ({"magnet": MAGNET, "backend": "../etc"}, "unknown_backend"),
            ({}, "invalid"),
        ],
    )
    def test_bad_input_is_4xx_and_creates_nothing(self, api_client, payload, code):
        response = api_client.post("/api/v1/jobs/", payload, format="json")
        assert 400 <= response.status_code < 500
        assert response.json()["code"] == code
        assert "detail" in response.json()
        assert not Job.objects.exists() and not JobEvent.objects.exists()

    def test_malformed_json_is_parse_error(self, api_client):
        response = api_client.generic("POST", "/api/v1/jobs/", "{nope", content_type="application/json")
        assert response.status_code == 400
        assert response.json()["code"] == "parse_error"

    def test_duplicate_active_job_is_conflict(self, api_client):
        assert api_client.post("/api/v1/jobs/", {"magnet": MAGNET}, format="json").status_code == 201
        response = api_client.post("/api/v1/jobs/", {"magnet": MAGNET}, format="json")
        assert response.status_code == 409
        assert response.json()["code"] == "duplicate"
        assert Job.objects.count() == 1

    def test_policy_gate(self, api_client, user):
        user.accepted_policy_version = 0
        user.save()
        response = api_client.post("/api/v1/jobs/", {"magnet": MAGNET}, format="json")
        assert response.status_code == 403
        assert response.json()["code"] == "policy_not_accepted"
        assert not Job.objects.exists()

    def test_quota_refusal_names_the_limit(self, api_client, user, tmp_path):
        PlanAssignmentFactory(user=user, plan=PlanFactory(max_job_size_bytes=1000))
        upload = io.BytesIO(make_torrent(tmp_path))
        upload.name = "p.torrent"
        response = api_client.post("/api/v1/jobs/", {"torrent": upload}, format="multipart")
        assert response.status_code == 403
        assert response.json() == {
            "code": "quota_exceeded",
            "detail": response.json()["detail"],
            "limit": "max_job_size_bytes",
        }
        assert not Job.objects.exists()

    def test_api_key_auth_creates_job(self, user):
        from rest_framework.test import APIClient

        ApiKeyFactory(user=user, raw="flt_abc123abc123abc123")
        client = APIClient()
        response = client.post("/api/v1/jobs/", {"magnet": MAGNET}, format="json",
                               HTTP_AUTHORIZATION="Token flt_abc123abc123abc123")
        assert response.status_code == 201
        response = client.get("/api/v1/jobs/", HTTP_X_API_KEY="flt_abc123abc123abc123")
        assert response.status_code == 200 and len(response.json()["results"]) == 1

    def test_anonymous_is_401(self):
        from rest_framework.test import APIClient

        response = APIClient().get("/api/v1/jobs/")
        assert response.status_code in (401, 403)
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
class TestBatch:
    def test_valid_lines_queued_in_order_and_errors_per_line(self, api_client):
        hashes = [f"{i:040x}" for i in range(1, 4)]
        text = "\n".join(
            [f"magnet:?xt=urn:btih:{hashes[0]}&dn=one", "garbage", "", f"magnet:?xt=urn:btih:{hashes[1]}&dn=two",
             f"magnet:?xt=urn:btih:{hashes[1]}&dn=dupe", f"magnet:?xt=urn:btih:{hashes[2]}&dn=three"]
        )
        response = api_client.post("/api/v1/batches/", {"magnets": text}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert [j["name"] for j in body["jobs"]] == ["one", "two", "three"]
        assert [j["position"] for j in body["jobs"]] == [1, 2, 3]
        assert [(e["line"], e["code"]) for e in body["errors"]] == [(2, "magnet_invalid"), (5, "duplicate")]
        assert body["batch"]["summary"]["total"] == 3
        assert Batch.objects.count() == 1

    def test_all_invalid_creates_nothing(self, api_client):
        response = api_client.post("/api/v1/batches/", {"magnets": "nope\nmagnet:?xt=urn:btih:zz"}, format="json")
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "batch_invalid" and len(body["errors"]) == 2
        assert not Batch.objects.exists() and not Job.objects.exists()

    def test_too_many_lines(self, api_client, settings):
        settings.BATCH_MAX_LINES = 2
        text = "\n".join(f"magnet:?xt=urn:btih:{i:040x}" for i in range(3))
        response = api_client.post("/api/v1/batches/", {"magnets": text}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "batch_too_large"


@pytest.mark.django_db
class TestListAndActions:
    def test_list_filters_and_pagination(self, api_client, user):
        JobFactory.create_batch(3, user=user, status=Status.COMPLETED)
        JobFactory.create_batch(2, user=user, status=Status.FAILED, backend="seedr")
        JobFactory(status=Status.COMPLETED)  # someone else's
        assert len(api_client.get("/api/v1/jobs/").json()["results"]) == 5
        assert len(api_client.get("/api/v1/jobs/?status=failed").json()["results"]) == 2
        assert len(api_client.get("/api/v1/jobs/?status=failed,completed").json()["results"]) == 5
        assert len(api_client.get("/api/v1/jobs/?backend=seedr").json()["results"]) == 2
        assert api_client.get("/api/v1/jobs/?status=bogus").json()["code"] == "invalid_filter"
        page = api_client.get("/api/v1/jobs/?page_size=2").json()
        assert len(page["results"]) == 2 and page["next"]
        second = api_client.get(page["next"]).json()
        assert {j["id"] for j in second["results"]}.isdisjoint({j["id"] for j in page["results"]})

    def test_list_query_count_is_constant(self, api_client, user, django_assert_num_queries):
        JobFactory.create_batch(30, user=user)
        with django_assert_num_queries(1):
            response = api_client.get("/api/v1/jobs/")
        assert len(response.json()["results"]) == 30

    def test_detail_has_files_and_events(self, api_client, user):
        job = JobFactory(user=user)
        JobFileFactory(job=job, path="x/y.bin")
        api_client.post(f"/api/v1/jobs/{job.pk}/pause/")
        body = api_client.get(f"/api/v1/jobs/{job.pk}/").json()
        assert body["files"][0]["path"] == "x/y.bin"
        assert body["events"][-1]["code"] == "paused"

    def test_pause_resume_cancel_retry_delete(self, api_client, user):
        job = JobFactory(user=user)
        assert api_client.post(f"/api/v1/jobs/{job.pk}/pause/").json()["status"] == "paused"
        assert api_client.post(f"/api/v1/jobs/{job.pk}/resume/").json()["status"] == "queued"
        assert api_client.post(f"/api/v1/jobs/{job.pk}/resume/").json()["code"] == "conflict"
        cancelled = api_client.post(f"/api/v1/jobs/{job.pk}/cancel/", {"delete_data": True}, format="json").json()
        assert cancelled["status"] == "cancelled" and cancelled["data_deleted"] is True
        assert api_client.post(f"/api/v1/jobs/{job.pk}/retry/").json()["status"] == "queued"
        assert api_client.delete(f"/api/v1/jobs/{job.pk}/").status_code == 204
        assert not Job.objects.filter(pk=job.pk).exists()
        codes = list(JobEvent.objects.filter(job_id=job.pk).values_list("code", flat=True))
        assert codes == ["paused", "queued", "cancelled", "data_removed", "queued", "deleted"]

    def test_cancel_with_data_removes_folder(self, api_client, user):
        job = JobFactory(user=user, status=Status.DOWNLOADING)
        job.data_dir.mkdir(parents=True)
        (job.data_dir / "f.bin").write_bytes(b"123")
        api_client.post(f"/api/v1/jobs/{job.pk}/cancel/", json.dumps({"delete_data": True}),
                        content_type="application/json")
        assert not job.data_dir.exists()

    def test_cancel_keeping_data_keeps_folder(self, api_client, user):
        job = JobFactory(user=user, status=Status.DOWNLOADING)
        job.data_dir.mkdir(parents=True)
        (job.data_dir / "f.bin").write_bytes(b"123")
        api_client.post(f"/api/v1/jobs/{job.pk}/cancel/", {"delete_data": False}, format="json")
        assert (job.data_dir / "f.bin").read_bytes() == b"123"


@pytest.mark.django_db
def test_usage_endpoint(api_client, user):
    JobFactory(user=user, status=Status.DOWNLOADING, size_bytes=1000)
    body = api_client.get("/api/v1/usage/").json()
    assert body["plan"] == "Free"
    assert body["storage_used"] == 1000
    assert body["active_jobs"] == 1 and body["active_jobs_limit"] == 3


@pytest.mark.django_db
class TestHostileIds:
    """Integers the database cannot hold are refused at the edge, never an OverflowError/DataError (500)."""

    @pytest.mark.parametrize("raw", ["1180591620717411303424", "9223372036854775808", "0", "²", "-1", "1e3"])
    def test_batch_filter_out_of_range_is_400(self, api_client, raw):
        api_client.raise_request_exception = False
        response = api_client.get("/api/v1/jobs/", {"batch": raw})
        assert response.status_code == 400 and response.json()["code"] == "invalid_filter"

    def test_batch_filter_at_the_bigint_limit_is_an_empty_list(self, api_client, user):
        JobFactory(user=user)
        response = api_client.get("/api/v1/jobs/", {"batch": str(2**63 - 1)})
        assert response.status_code == 200 and response.json()["results"] == []

    @pytest.mark.parametrize("path", ["/api/v1/jobs/99999999999999999999999/", "/api/v1/jobs/9223372036854775808/",
                                      "/api/v1/jobs/99999999999999999999999/files/",
                                      "/api/v1/batches/99999999999999999999999/"])
    def test_path_ids_beyond_bigint_are_404(self, api_client, path):
        api_client.raise_request_exception = False
        response = api_client.get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    @pytest.mark.parametrize("action", ["pause", "resume", "cancel", "retry"])
    def test_path_ids_beyond_bigint_on_actions_are_404(self, api_client, action):
        api_client.raise_request_exception = False
        response = api_client.post(f"/api/v1/jobs/99999999999999999999999/{action}/")
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    @pytest.mark.parametrize("action", ["pause", "resume", "cancel", "retry"])
    def test_action_routes_accept_only_post(self, api_client, user, action):
        job = JobFactory(user=user)
        for method in ("delete", "put", "patch", "get"):
            response = getattr(api_client, method)(f"/api/v1/jobs/{job.pk}/{action}/")
            assert response.status_code == 405 and response["Allow"] == "POST, OPTIONS"
        assert Job.objects.filter(pk=job.pk, status=job.status).exists()
