"""Connecting Seedr accounts: device code first, password as fallback; refreshes persisted under a
per-account lock; disconnect, admin revoke and the purge command. Against the live fake Seedr."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuditLog
from config.errors import DomainError
from downloads.models import Status
from seedr import client, services
from seedr.models import SeedrAccount, SeedrDeviceLogin
from tests.seedr.conftest import SEEDR_EMAIL, SEEDR_PASSWORD, drive, magnet, refreshed


def poll_now(user):
    SeedrDeviceLogin.objects.filter(user=user).update(next_poll_at=timezone.now())
    return services.poll_device_login(user)


@pytest.mark.django_db
class TestDeviceCode:
    def test_start_poll_pending_then_connected(self, fake, user):
        login = services.start_device_login(user)
        assert login.user_code and login.verification_url == f"{fake.base_url}/devices"
        assert isinstance(poll_now(user), SeedrDeviceLogin)  # authorization_pending
        fake.approve(login.user_code, SEEDR_EMAIL)
        account = poll_now(user)
        assert isinstance(account, SeedrAccount)
        assert (account.state, account.method, account.account_name) == ("connected", "device", SEEDR_EMAIL)
        token = services.stored_token(account.pk)
        assert token.device_code and token.access_token  # the device code is the long-lived credential
        assert not SeedrDeviceLogin.objects.filter(user=user).exists()
        assert AuditLog.objects.filter(action="seedr.connect", actor=user).exists()

    def test_polls_respect_seedrs_interval(self, fake, user):
        services.start_device_login(user)
        poll_now(user)
        before = fake.calls("device_authorize")
        services.poll_device_login(user)  # too soon: Seedr is not asked
        assert fake.calls("device_authorize") == before

    def test_an_expired_code_is_refused(self, fake, user):
        services.start_device_login(user)
        SeedrDeviceLogin.objects.filter(user=user).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        with pytest.raises(DomainError) as refused:
            services.poll_device_login(user)
        assert refused.value.code == "seedr_device_expired"

    def test_polling_without_a_login_in_progress(self, fake, user):
        with pytest.raises(DomainError) as refused:
            services.poll_device_login(user)
        assert refused.value.code == "seedr_no_device_login"

    def test_seedr_down_is_a_502(self, fake, user):
        fake.fail_next("device_code", 500, {"error": "down"})
        with pytest.raises(DomainError) as refused:
            services.start_device_login(user)
        assert (refused.value.code, refused.value.http_status) == ("seedr_unavailable", 502)


@pytest.mark.django_db
class TestPassword:
    def test_login_stores_tokens_encrypted_and_never_the_password(self, fake, user):
        account = services.password_login(user, SEEDR_EMAIL, SEEDR_PASSWORD)
        token = services.stored_token(account.pk)
        assert token.refresh_token and token.access_token
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT token FROM seedr_seedraccount WHERE id = %s", [account.pk])
            raw = cursor.fetchone()[0]
        assert token.access_token not in raw and SEEDR_PASSWORD not in raw
        meta = AuditLog.objects.get(action="seedr.connect").metadata
        assert SEEDR_PASSWORD not in str(meta) and token.access_token not in str(meta)

    def test_wrong_password(self, fake, user):
        with pytest.raises(DomainError) as refused:
            services.password_login(user, SEEDR_EMAIL, "wrong")
        assert refused.value.code == "seedr_login_failed"
        assert not SeedrAccount.objects.filter(user=user, state="connected").exists()


@pytest.mark.django_db
class TestRefresh:
    def test_concurrent_refreshes_of_one_account_make_one_seedr_call(self, fake, user, connected):
        """Two clients (as two processes would have) hit `expired_token` at once: the per-account lease lets
        one refresh; the other adopts the stored token."""
        fake.expire_tokens()
        token = services.stored_token(connected.pk)
        first = client.FlotillaSeedr(token, services.hooks(connected))
        second = client.FlotillaSeedr(token, services.hooks(connected))

        async def both():
            try:
                return await asyncio.gather(first.list_contents(), second.list_contents())
            finally:
                await first.close()
                await second.close()

        client.apply_urls()
        results = client.runner.run(both)
        assert len(results) == 2
        assert fake.calls("token") == 2  # the login, then ONE refresh
        stored = services.stored_token(connected.pk)
        assert first.token == second.token == stored and stored.access_token != token.access_token

    def test_seedr_tokens_never_reach_the_logs(self, fake, user, connected, caplog):
        token = services.stored_token(connected.pk)
        with caplog.at_level(logging.DEBUG):
            services.add(user, magnet=magnet(1))
            fake.expire_tokens()
            drive(3)
        assert token.access_token not in caplog.text and token.refresh_token not in caplog.text
        assert "ff_get" not in caplog.text  # signed file links neither


@pytest.mark.django_db
class TestRevoke:
    def test_disconnect_forgets_tokens_and_holds_running_jobs(self, fake, user, connected):
        job = services.add(user, magnet=magnet(2))
        drive()
        services.disconnect(user)
        account = SeedrAccount.objects.get(user=user)
        assert (account.state, account.token) == ("disconnected", None)
        job = refreshed(job)
        assert (job.status, job.reason_code) == (Status.WAITING, "seedr_not_connected")
        assert AuditLog.objects.filter(action="seedr.disconnect", actor=user).exists()
        drive()  # nothing happens without a login
        assert refreshed(job).status == Status.WAITING

    def test_admin_revokes_a_session_from_the_console(self, fake, user, connected, admin_user, client):
        client.force_login(admin_user)
        response = client.post("/admin/seedr/seedraccount/", {"action": "revoke_sessions",
                                                               "_selected_action": [connected.pk]}, follow=True)
        assert response.status_code == 200
        assert "Seedr sessions revoked: 1" in response.content.decode()
        assert SeedrAccount.objects.get(pk=connected.pk).token is None
        assert AuditLog.objects.filter(action="seedr.revoke", actor=admin_user).exists()

    def test_admin_pages_never_show_tokens(self, fake, user, connected, admin_user, client):
        client.force_login(admin_user)
        token = services.stored_token(connected.pk)
        for url in ("/admin/seedr/seedraccount/", f"/admin/seedr/seedraccount/{connected.pk}/change/"):
            body = client.get(url).content.decode()
            assert SEEDR_EMAIL in body and token.access_token not in body and token.refresh_token not in body

    def test_purge_command_all_or_one_user(self, fake, user, other_user, connected, capsys):
        services.password_login(other_user, SEEDR_EMAIL, SEEDR_PASSWORD)
        call_command("purge_seedr_tokens", "--user", other_user.email)
        assert "Purged 1 Seedr session(s)" in capsys.readouterr().out
        assert SeedrAccount.objects.get(user=user).token
        call_command("purge_seedr_tokens")
        out = capsys.readouterr().out
        assert "Purged 1 Seedr session(s); 0 job(s) now wait" in out
        assert not SeedrAccount.objects.filter(token__isnull=False).exists()

    def test_purge_command_unknown_user(self, fake):
        from django.core.management.base import CommandError

        with pytest.raises(CommandError):
            call_command("purge_seedr_tokens", "--user", "nobody@example.com")
