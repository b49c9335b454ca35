"""The Seedr page renders its first state on the server (no JavaScript needed to see it)."""

from __future__ import annotations

import pytest

from tests.seedr.conftest import SEEDR_EMAIL, drive, magnet


@pytest.mark.django_db
class TestPanel:
    def test_not_connected_shows_the_device_code_option(self, fake, client, user):
        client.force_login(user)
        body = client.get("/seedr/").content.decode()
        assert "Connect with a code" in body and "sign in with your Seedr email" in body
        assert 'id="seedr-connected" hidden' in body
        assert "one torrent at a time" in body  # the free-tier explanation
        assert 'href="/seedr/" aria-current="page">Seedr</a>' in body  # the navigation link

    def test_connected_shows_account_and_queue_in_order(self, fake, client, user, connected):
        from seedr import services

        services.add(user, magnet=magnet(1, "First"))
        services.add(user, magnet=magnet(2, "Second"))
        drive()
        client.force_login(user)
        body = client.get("/seedr/").content.decode()
        assert f"Connected as <strong data-field=\"account_name\">{SEEDR_EMAIL}</strong>" in body
        assert body.index(">First<") < body.index(">Second<")
        assert "Waiting for your earlier Seedr download" in body
        assert 'class="spinner"' in body  # Seedr is preparing the first one

    def test_expired_login_notice(self, fake, client, user, connected):
        from seedr.models import SeedrAccount

        SeedrAccount.objects.filter(user=user).update(state="expired")
        client.force_login(user)
        assert 'data-notice="expired"' in client.get("/seedr/").content.decode()

    def test_disabled_seedr_has_no_page_and_no_link(self, fake, client, user, settings):
        settings.SEEDR_ENABLED = False
        client.force_login(user)
        assert client.get("/seedr/").status_code == 404
        assert 'href="/seedr/"' not in client.get("/").content.decode()

    def test_anonymous_is_sent_to_login(self, client):
        response = client.get("/seedr/")
        assert response.status_code == 302 and "/accounts/login" in response["Location"]


def test_bad_seedr_settings_fail_the_system_check(settings):
    from seedr.checks import seedr_settings

    assert seedr_settings(None) == []
    settings.SEEDR_MULTIFILE_MODE = "zip"
    settings.SEEDR_BATCH_CONCURRENCY = 0
    assert [e.id for e in seedr_settings(None)] == ["seedr.E001", "seedr.E002"]
