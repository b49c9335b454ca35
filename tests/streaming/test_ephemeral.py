"""Play without downloading (streaming/ephemeral.py): POST /api/v1/stream/play/ from a magnet, a .torrent or a
search result; checks like any add, nothing created on refusal; Keep; idle removal with the clock passed in;
last read recorded by the stream view."""

from __future__ import annotations

import datetime as dt
import io
import os

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.utils import timezone

from accounts.models import AuditLog
from downloads.models import Job, JobEvent, Status
from indexers.models import SearchResult, guid_digest
from streaming import ephemeral
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.downloads.test_api_jobs import MAGNET, make_torrent
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db
PLAY = "/api/v1/stream/play/"


def upload(tmp_path, name="payload", files=None):
    data = io.BytesIO(make_torrent(tmp_path, name, files))
    data.name = f"{name}.torrent"
    return data


def search_result(user, magnet=MAGNET):
    indexer = IndexerFactory(owner=user, privacy="public")
    return SearchResult.objects.create(user=user, indexer=indexer, guid="g1", guid_hash=guid_digest("g1"),
                                       title="Debian ISO", magnet=magnet,
                                       expires_at=timezone.now() + dt.timedelta(hours=1))


class TestPlay:
    def test_magnet_makes_an_ephemeral_engine_job_and_answers_where_to_play(self, api_client, user):
        response = api_client.post(PLAY, {"magnet": MAGNET}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        job = Job.objects.get(pk=body["job"]["id"])
        assert job.user == user and job.ephemeral and job.backend == "engine" and job.status == Status.QUEUED
        assert body["job"]["ephemeral"] is True
        assert body["player_url"] == f"/d/play/{job.pk}/"
        assert body["ready"] is False and body["stream_url"] is None  # no metadata yet: no file to name
        assert body["playable"] is None
        assert AuditLog.objects.filter(action="job.create", target_id=str(job.pk),
                                       metadata__ephemeral=True).exists()

    def test_torrent_is_ready_at_once_with_its_stream_url(self, api_client, tmp_path):
        response = api_client.post(PLAY, {"torrent": upload(tmp_path, files={"film.mp4": 9000})},
                                   format="multipart")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["ready"] is True and body["stream_url"] == f"/api/v1/stream/{body['job']['id']}"
        status = api_client.get(body["status_url"]).json()
        assert status["ready"] is True and status["player_url"] == body["player_url"] and status["playable"] is True

    def test_a_torrent_without_video_or_audio_says_so(self, api_client, tmp_path):
        body = api_client.post(PLAY, {"torrent": upload(tmp_path, files={"book.epub": 9000})},
                               format="multipart").json()
        assert body["ready"] is False and body["playable"] is False

    def test_search_result_is_played_through_the_grab(self, api_client, user):
        result = search_result(user)
        response = api_client.post(PLAY, {"result": result.pk}, format="json")
        assert response.status_code == 201, response.json()
        job = Job.objects.get(pk=response.json()["job"]["id"])
        assert job.ephemeral and job.backend == "engine" and job.magnet == MAGNET
        assert AuditLog.objects.filter(action="search.grab", target_id=str(job.pk), metadata__ephemeral=True).exists()

    def test_another_users_search_result_is_404(self, api_client, other_user):
        theirs = search_result(other_user)
        response = api_client.post(PLAY, {"result": theirs.pk}, format="json")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
        assert not Job.objects.exists()

    @pytest.mark.parametrize(("payload", "code"), [
        ({}, "invalid"),
        ({"magnet": MAGNET, "result": 3}, "invalid"),
        ({"magnet": "magnet:?xt=urn:btih:1234"}, "magnet_bad_hash"),
        ({"magnet": "http://example.com/x.torrent"}, "magnet_invalid"),
        ({"result": 0}, "invalid"),
        ({"result": "x"}, "invalid"),
        ({"result": 2**64}, "invalid"),
        ({"magnet": ["a"]}, "invalid"),
    ])
    def test_bad_input_is_4xx_and_creates_nothing(self, api_client, payload, code):
        response = api_client.post(PLAY, payload, format="json")
        assert 400 <= response.status_code < 500
        assert response.json()["code"] == code and response.json()["detail"]
        assert not Job.objects.exists() and not JobEvent.objects.exists()

    def test_broken_torrent_file_is_400(self, api_client):
        data = io.BytesIO(b"d4:infod")
        data.name = "x.torrent"
        response = api_client.post(PLAY, {"torrent": data}, format="multipart")
        assert response.status_code == 400 and response.json()["code"]
        assert not Job.objects.exists()

    def test_anonymous_is_401(self, client):
        response = client.post(PLAY, {"magnet": MAGNET}, content_type="application/json")
        assert response.status_code in (401, 403) and response.json()["code"]
        assert not Job.objects.exists()

    def test_plan_without_the_engine_is_refused(self, api_client, user):
        PlanAssignmentFactory(user=user, plan=PlanFactory(allowed_backends=["seedr"]))
        response = api_client.post(PLAY, {"magnet": MAGNET}, format="json")
        assert response.status_code == 403 and response.json()["limit"] == "allowed_backends"
        assert not Job.objects.exists()

    def test_counts_against_storage_while_it_exists(self, api_client, user, tmp_path):
        PlanAssignmentFactory(user=user, plan=PlanFactory(max_storage_bytes=12_000))
        first = api_client.post(PLAY, {"torrent": upload(tmp_path, "one", {"a.mp4": 8000})}, format="multipart")
        assert first.status_code == 201
        second = api_client.post(PLAY, {"torrent": upload(tmp_path, "two", {"b.mp4": 8000})}, format="multipart")
        assert second.status_code == 403 and second.json()["code"] == "quota_exceeded"
        assert second.json()["limit"] == "max_storage_bytes" and Job.objects.count() == 1
        ephemeral.remove_idle(timezone.now() + dt.timedelta(minutes=31))
        third = api_client.post(PLAY, {"torrent": upload(tmp_path, "three", {"c.mp4": 8000})}, format="multipart")
        assert third.status_code == 201, "the removed ephemeral job no longer holds storage"

    def test_duplicate_of_a_running_download_is_409(self, api_client):
        assert api_client.post("/api/v1/jobs/", {"magnet": MAGNET}, format="json").status_code == 201
        response = api_client.post(PLAY, {"magnet": MAGNET}, format="json")
        assert response.status_code == 409 and response.json()["code"] == "duplicate"
        assert Job.objects.filter(ephemeral=True).count() == 0


class TestKeep:
    def test_keep_turns_it_into_a_download_and_is_audited(self, api_client, user):
        job = JobFactory(user=user, ephemeral=True, backend="engine")
        response = api_client.post(f"/api/v1/jobs/{job.pk}/keep/")
        assert response.status_code == 200 and response.json()["ephemeral"] is False
        job.refresh_from_db()
        assert not job.ephemeral
        assert AuditLog.objects.filter(action="job.keep", target_id=str(job.pk), actor=user).exists()
        assert ephemeral.remove_idle(timezone.now() + dt.timedelta(days=1)) == 0
        assert Job.objects.filter(pk=job.pk).exists()

    def test_keep_twice_is_409(self, api_client, user):
        job = JobFactory(user=user, ephemeral=False)
        response = api_client.post(f"/api/v1/jobs/{job.pk}/keep/")
        assert response.status_code == 409 and response.json()["code"] == "not_ephemeral"

    def test_another_users_job_is_404(self, api_client, other_user):
        theirs = JobFactory(user=other_user, ephemeral=True)
        for response in (api_client.post(f"/api/v1/jobs/{theirs.pk}/keep/"),
                         api_client.get(f"/api/v1/stream/play/{theirs.pk}/")):
            assert response.status_code == 404 and response.json()["code"] == "not_found"
        assert Job.objects.get(pk=theirs.pk).ephemeral

    def test_huge_id_is_404(self, api_client):
        assert api_client.post(f"/api/v1/jobs/{2**70}/keep/").status_code == 404


class TestIdleRemoval:
    def make(self, user, **fields):
        job = JobFactory(user=user, ephemeral=True, backend="engine", status=Status.DOWNLOADING, **fields)
        job.data_dir.mkdir(parents=True)
        (job.data_dir / "film.mp4").write_bytes(b"x" * 100)
        return job

    def test_removed_with_its_data_after_the_idle_time_only(self, user, settings):
        settings.STREAM_IDLE_MINUTES = 30
        created = timezone.now()
        job = self.make(user, created_at=created)
        read = self.make(user, created_at=created, last_read_at=created + dt.timedelta(minutes=20))
        kept = JobFactory(user=user, ephemeral=False, created_at=created)
        assert ephemeral.remove_idle(created + dt.timedelta(minutes=29)) == 0
        assert ephemeral.remove_idle(created + dt.timedelta(minutes=31)) == 1
        assert not Job.objects.filter(pk=job.pk).exists() and not job.data_dir.exists()
        assert Job.objects.filter(pk__in=[read.pk, kept.pk]).count() == 2 and read.data_dir.exists()
        assert AuditLog.objects.filter(action="job.ephemeral_removed", target_id=str(job.pk)).exists()
        assert ephemeral.remove_idle(created + dt.timedelta(minutes=51)) == 1  # 30 min after its last read
        assert not Job.objects.filter(pk=read.pk).exists()

    def test_the_task_runs_the_service(self, user, settings):
        from streaming import tasks

        self.make(user, created_at=timezone.now() - dt.timedelta(minutes=settings.STREAM_IDLE_MINUTES + 1))
        assert tasks.remove_idle_streams() == 1 and not Job.objects.exists()

    def test_scheduled(self):
        from downloads.schedules import SCHEDULES

        assert SCHEDULES["flotilla.remove_idle_streams"][0] == "streaming.tasks.remove_idle_streams"


class TestLastRead:
    def test_a_stream_read_records_the_time_and_other_jobs_are_untouched(self, user):
        data = os.urandom(50_000)
        job = JobFactory(user=user, ephemeral=True, backend="engine", status=Status.COMPLETED, name="Film")
        plain = JobFactory(user=user, backend="engine", status=Status.COMPLETED, name="Film")
        for each in (job, plain):
            each.data_dir.mkdir(parents=True)
            (each.data_dir / "film.mp4").write_bytes(data)
            JobFileFactory(job=each, path="film.mp4", size_bytes=len(data), completed_bytes=len(data),
                           mime_type="video/mp4")
        before = timezone.now()

        async def read(job_id):
            client = AsyncClient()
            await client.aforce_login(user)
            response = await client.get(f"/api/v1/stream/{job_id}/", headers={"Range": "bytes=0-999"})
            body = b"".join([chunk async for chunk in response.streaming_content])
            return response.status_code, body

        assert async_to_sync(read)(job.pk) == (206, data[:1000])
        assert async_to_sync(read)(plain.pk) == (206, data[:1000])
        job.refresh_from_db()
        plain.refresh_from_db()
        assert job.last_read_at is not None and job.last_read_at >= before
        assert plain.last_read_at is None
