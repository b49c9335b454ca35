"""/api/v1/seedr/: connect, queue actions, status and account, with validation and isolation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from downloads.models import Job, Status
from seedr.models import SeedrAccount, SeedrDeviceLogin
from tests.seedr.conftest import SEEDR_EMAIL, SEEDR_PASSWORD, drive, magnet


def url(name: str) -> str:
    return reverse(f"seedr-{name}")


@pytest.mark.django_db
class TestConnect:
    def test_device_flow_over_the_api(self, fake, api_client, user):
        started = api_client.post(url("device-start"))
        assert started.status_code == 201, started.content
        body = started.json()
        assert set(body) == {"state", "user_code", "verification_url", "interval", "expires_at"}
        assert "device_code" not in started.content.decode()  # the secret half stays on the server
        assert api_client.post(url("device-poll")).json()["state"] == "pending"
        fake.approve(body["user_code"], SEEDR_EMAIL)
        SeedrDeviceLogin.objects.update(next_poll_at=SeedrDeviceLogin.objects.get().created_at)
        polled = api_client.post(url("device-poll")).json()
        assert polled["state"] == "connected" and polled["account"]["account_name"] == SEEDR_EMAIL

    def test_password_login_and_logout(self, fake, api_client, user):
        bad = api_client.post(url("login"), {"username": SEEDR_EMAIL, "password": "nope"}, format="json")
        assert (bad.status_code, bad.json()["code"]) == (400, "seedr_login_failed")
        good = api_client.post(url("login"), {"username": SEEDR_EMAIL, "password": SEEDR_PASSWORD}, format="json")
        assert good.status_code == 200 and good.json()["account"]["connected"] is True
        assert "token" not in good.content.decode()
        out = api_client.post(url("logout"))
        assert out.json()["account"]["state"] == "disconnected"

    def test_login_needs_both_fields(self, fake, api_client):
        response = api_client.post(url("login"), {"username": SEEDR_EMAIL}, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid")

    def test_disabled_seedr_is_a_404_with_its_code(self, fake, api_client, settings):
        settings.SEEDR_ENABLED = False
        response = api_client.get(url("status"))
        assert (response.status_code, response.json()["code"]) == (404, "seedr_disabled")

    def test_anonymous_is_refused(self, fake, client):
        assert client.get(url("status")).status_code in (401, 403)


@pytest.mark.django_db
class TestQueue:
    def test_add_batch_status_and_done(self, fake, api_client, user, connected):
        added = api_client.post(url("add"), {"magnet": magnet(1, "Solo")}, format="json")
        assert added.status_code == 201 and added.json()["backend"] == "seedr"
        text = "\n".join([magnet(2), "not a magnet", magnet(3)])
        batch = api_client.post(url("batch-add"), {"magnets": text, "name": "Week"}, format="json")
        assert batch.status_code == 201, batch.content
        assert [e["line"] for e in batch.json()["errors"]] == [2]
        batch_id = batch.json()["batch"]["id"]
        drive()
        status = api_client.get(url("status")).json()
        assert [item["name"] for item in status["queue"]] == ["Solo", "Item 2", "Item 3"]
        assert status["queue"][0]["status"] == "downloading" and status["queue"][0]["phase"] == "remote"
        assert status["queue"][1]["reason_code"] == "seedr_waiting_turn"  # one Seedr job at a time
        summary = status["batches"][0]
        assert (summary["id"], summary["total"], summary["remaining"], summary["current"]) == (batch_id, 2, 2, None)
        assert status["account"]["connected"] and status["quota"]["plan_storage_left"] > 0
        drive(8)
        status = api_client.get(url("status")).json()
        assert status["queue"] == [] and len(status["done"]) == 3
        assert status["batches"][0]["done"] == 2

    def test_held_batch_starts_on_request(self, fake, api_client, user, connected):
        text = "\n".join([magnet(4), magnet(5)])
        body = api_client.post(url("batch-add"), {"magnets": text, "auto_start": False}, format="json").json()
        drive()
        assert set(Job.objects.values_list("status", flat=True)) == {Status.PAUSED}
        started = api_client.post(url("start"), {"batch": body["batch"]["id"]}, format="json")
        assert [j["status"] for j in started.json()["jobs"]] == ["queued", "queued"]
        drive()
        first, second = Job.objects.order_by("position")
        assert first.status == Status.DOWNLOADING and second.status == Status.QUEUED

    def test_auto_start_toggle_is_the_default_for_batches(self, fake, api_client, user, connected):
        assert api_client.post(url("auto-start"), {"enabled": False}, format="json").status_code == 200
        assert SeedrAccount.objects.get(user=user).auto_start is False
        api_client.post(url("batch-add"), {"magnets": magnet(6)}, format="json")
        assert Job.objects.get().status == Status.PAUSED

    def test_cancel_retry_and_clear_per_item(self, fake, api_client, user, connected):
        job_id = api_client.post(url("add"), {"magnet": magnet(7)}, format="json").json()["id"]
        drive()
        cancelled = api_client.post(url("cancel"), {"ids": [job_id]}, format="json")
        assert cancelled.json()["jobs"][0]["status"] == "cancelled"
        assert fake.account(SEEDR_EMAIL).is_empty()
        retried = api_client.post(url("retry"), {"ids": [job_id]}, format="json")
        assert retried.json()["jobs"][0]["status"] == "queued"
        drive(3)
        assert Job.objects.get(pk=job_id).status == Status.COMPLETED
        assert api_client.post(url("clear"), {}, format="json").json() == {"cleared": 1}
        status = api_client.get(url("status")).json()
        assert status["done"] == [] and Job.objects.filter(pk=job_id).exists()  # only hidden

    def test_cancel_needs_a_selection(self, fake, api_client, connected):
        response = api_client.post(url("cancel"), {}, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid")

    def test_another_users_items_are_404(self, fake, api_client, other_client, user, connected):
        job_id = api_client.post(url("add"), {"magnet": magnet(8)}, format="json").json()["id"]
        batch_id = api_client.post(url("batch-add"), {"magnets": magnet(9)}, format="json").json()["batch"]["id"]
        for name, payload in (("cancel", {"ids": [job_id]}), ("retry", {"ids": [job_id]}),
                              ("clear", {"ids": [job_id]}), ("start", {"batch": batch_id})):
            response = other_client.post(url(name), payload, format="json")
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), name
        assert other_client.get(url("status")).json()["queue"] == []
        assert Job.objects.get(pk=job_id).status == Status.QUEUED

    def test_torrent_upload_validation(self, fake, api_client, connected):
        from django.core.files.uploadedfile import SimpleUploadedFile

        bad = api_client.post(url("add"), {"torrent": SimpleUploadedFile("x.torrent", b"garbage")},
                              format="multipart")
        assert bad.status_code == 400 and bad.json()["code"].startswith("torrent")
        assert not Job.objects.exists()


@pytest.mark.django_db
class TestAccount:
    def test_manual_refresh_caches_insights(self, fake, api_client, user, connected):
        before = api_client.get(url("account")).json()
        assert before["insights"] == {} and before["connected"]
        refreshed = api_client.post(url("account-refresh")).json()
        memory = refreshed["insights"]["memory"]
        assert memory["space_max"] == 50_000_000 and refreshed["insights"]["account"]["package_name"]
        assert refreshed["insights_at"] and api_client.get(url("account")).json()["insights"] == refreshed["insights"]

    def test_refresh_when_not_connected_is_a_409(self, fake, api_client, user):
        response = api_client.post(url("account-refresh"))
        assert (response.status_code, response.json()["code"]) == (409, "seedr_not_connected")

    def test_scheduled_refresh_covers_every_connected_account(self, fake, user, connected):
        from seedr import tasks

        assert tasks.refresh_insights() == 1
        assert SeedrAccount.objects.get(user=user).insights["devices"] == []

    def test_insights_schedule_exists(self, fake, settings):
        from django_q.models import Schedule

        from seedr.tasks import INSIGHTS_SCHEDULE, ensure_schedules

        settings.SEEDR_INSIGHTS_MINUTES = 7
        ensure_schedules()
        assert Schedule.objects.get(name=INSIGHTS_SCHEDULE).minutes == 7


@pytest.mark.django_db
class TestHostileIds:
    """Ids beyond a 64-bit integer are refused at the edge (400 invalid), never a database OverflowError."""

    @pytest.mark.parametrize("name", ["retry", "cancel", "start", "clear"])
    @pytest.mark.parametrize("body", [{"ids": [1180591620717411303424]}, {"batch": 2**63},
                                      {"ids": [0]}, {"ids": [-1]}, {"ids": ["²"]}])
    def test_out_of_range_ids_are_400_invalid(self, fake, api_client, user, connected, name, body):
        api_client.raise_request_exception = False
        response = api_client.post(url(name), body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid"
        assert set(response.json()["errors"]) <= {"ids", "batch"}

    def test_the_largest_bigint_is_a_404_not_a_500(self, fake, api_client, user, connected):
        response = api_client.post(url("retry"), {"ids": [2**63 - 1]}, format="json")
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    @pytest.mark.parametrize("name", ["retry", "cancel", "login", "status"])
    def test_routes_accept_only_their_method(self, fake, api_client, name):
        wrong = api_client.put if name != "status" else api_client.post
        response = wrong(url(name), {}, format="json")
        assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
