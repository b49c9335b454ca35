"""Rate limits on sign-up, password reset, verification resend (per address and per client) and websocket
connects (per client and per user). The cache is emptied around each test (tests/accounts/conftest.py)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from accounts import services, throttle
from accounts.models import User
from config.asgi import application
from downloads import consumers
from downloads.relay import relay
from tests.accounts.factories import ApiKeyFactory, UserFactory

PASSWORD = "a sturdy passphrase 42"


def _sign_up(client, n: int, ip: str = "203.0.113.7"):
    return client.post(reverse("accounts:register"),
                       {"email": f"new{n}@example.com", "password1": PASSWORD, "password2": PASSWORD},
                       REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_sign_ups_are_limited_per_client_address(client, settings, mailoutbox):
    settings.RATE_LIMIT_REGISTER_IP = "3/hour"
    for n in range(3):
        assert _sign_up(client, n).status_code == 302
        client.logout()
    response = _sign_up(client, 3)
    assert response.status_code == 429
    assert "Too many sign-ups from your network. Try again in" in response.content.decode()
    assert not User.objects.filter(email="new3@example.com").exists()
    assert _sign_up(client, 4, ip="198.51.100.9").status_code == 302  # another client is not affected


@pytest.mark.django_db
def test_ipv6_clients_are_counted_per_64(client, settings):
    settings.RATE_LIMIT_REGISTER_IP = "1/hour"
    assert _sign_up(client, 0, ip="2001:db8:1:2::10").status_code == 302
    client.logout()
    assert _sign_up(client, 1, ip="2001:db8:1:2:ffff::99").status_code == 429
    assert _sign_up(client, 2, ip="2001:db8:1:3::10").status_code == 302


@pytest.mark.django_db
def test_register_service_raises_throttled_with_retry_after(settings):
    from config.logging import client_ip_var

    settings.RATE_LIMIT_REGISTER_IP = "1/day"
    token = client_ip_var.set("192.0.2.1")
    try:
        services.register_user("one@example.com", PASSWORD)
        with pytest.raises(throttle.Throttled) as refused:
            services.register_user("two@example.com", PASSWORD)
    finally:
        client_ip_var.reset(token)
    assert refused.value.http_status == 429 and refused.value.code == "throttled"
    assert 0 < refused.value.retry_after <= 86400
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}
    assert refused.value.as_dict() == {"code": "throttled", "detail": refused.value.detail}


def _reset(client, email: str, ip: str = "203.0.113.7"):
    return client.post(reverse("accounts:password_reset"), {"email": email}, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_password_reset_mails_are_limited_per_address(client, settings, user, mailoutbox):
    settings.RATE_LIMIT_PASSWORD_RESET_EMAIL = "2/hour"
    for ip in ("203.0.113.1", "203.0.113.2"):
        assert _reset(client, user.email, ip).status_code == 302
    response = _reset(client, user.email.upper(), "203.0.113.3")  # any case, any client
    assert response.status_code == 429
    assert "Too many password reset requests" in response.content.decode()
    assert len(mailoutbox) == 2
    # An unknown address is counted the same way, so the limit reveals nothing about who has an account.
    for _ in range(2):
        assert _reset(client, "nobody@example.com").status_code == 302
    assert _reset(client, "nobody@example.com").status_code == 429


@pytest.mark.django_db
def test_password_reset_requests_are_limited_per_client(client, settings, mailoutbox):
    settings.RATE_LIMIT_PASSWORD_RESET_IP = "3/hour"
    targets = [UserFactory(email=f"t{n}@example.com") for n in range(4)]
    for target in targets[:3]:
        assert _reset(client, target.email).status_code == 302
    assert _reset(client, targets[3].email).status_code == 429
    assert len(mailoutbox) == 3


@pytest.mark.django_db
def test_verification_resend_is_limited_per_address_beyond_the_minute(client, settings, mailoutbox):
    settings.RATE_LIMIT_VERIFY_RESEND_EMAIL = "2/hour"
    user = UserFactory(email_verified=False)
    client.force_login(user)
    for _ in range(3):
        cache.delete(services._resend_key(user))  # the one-a-minute interval is over
        response = client.post(reverse("accounts:verify_resend"), follow=True)
    assert len(mailoutbox) == 2
    assert "A link was sent recently" in response.content.decode()


@pytest.mark.django_db
def test_verification_resend_is_limited_per_client(client, settings, mailoutbox):
    settings.RATE_LIMIT_VERIFY_RESEND_IP = "1/hour"
    for n in range(2):
        client.force_login(UserFactory(email=f"unverified{n}@example.com", email_verified=False))
        client.post(reverse("accounts:verify_resend"), REMOTE_ADDR="203.0.113.5")
    assert [m.to for m in mailoutbox] == [["unverified0@example.com"]]


@pytest.mark.parametrize(("text", "expected"), [
    ("5/hour", throttle.Rate(5, 3600)), ("10/15m", throttle.Rate(10, 900)), ("3/days", throttle.Rate(3, 86400)),
    ("120/minute", throttle.Rate(120, 60)), ("0", None), ("", None), ("0/hour", None),
])
def test_parse_rate(text, expected):
    assert throttle.parse_rate(text) == expected


@pytest.mark.parametrize("text", ["5", "five/hour", "5/fortnight", "-1/hour", "5/hour/2"])
def test_parse_rate_refuses_nonsense(text):
    with pytest.raises(ValueError):
        throttle.parse_rate(text)


def test_a_bad_rate_setting_fails_the_system_check(settings):
    settings.RATE_LIMIT_WS_CONNECT_USER = "lots"
    with pytest.raises(SystemCheckError, match="RATE_LIMIT_WS_CONNECT_USER"):
        call_command("check")


# --- websockets ---------------------------------------------------------------------------------------

WS_KEY = "flt_ws_user_key_" + "u" * 30


@pytest.fixture
def fresh_relay():
    """Accepted sockets start the process-wide relay: leave it (and the channel layer) as we found it."""
    def reset():
        relay.cursor, relay._task = None, None
        async_to_sync(get_channel_layer().flush)()

    reset()
    yield
    reset()


def _socket(key: str | None = None, ip: str = "203.0.113.20") -> WebsocketCommunicator:
    headers = [(b"authorization", f"Token {key}".encode())] if key else []
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    communicator.scope["client"] = [ip, 40000]  # what daphne puts there (the peer, or the proxy's header)
    return communicator


async def _close_codes(sockets: list[WebsocketCommunicator]) -> list[int | None]:
    """For each socket in turn: None when the server said hello (accepted), else the code it closed with."""
    codes = []
    for communicator in sockets:
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        first = await communicator.receive_output(timeout=5)
        codes.append(first.get("code") if first["type"] == "websocket.close" else None)
        await communicator.disconnect()
    return codes


@pytest.mark.django_db(transaction=True)
def test_websocket_connects_are_limited_per_user(settings, user, fresh_relay):
    settings.RATE_LIMIT_WS_CONNECT_USER = "2/minute"
    ApiKeyFactory(user=user, raw=WS_KEY)
    codes = asyncio.run(_close_codes([_socket(WS_KEY, ip=f"203.0.113.{n}") for n in range(3)]))
    assert codes == [None, None, consumers.CLOSE_THROTTLED]


@pytest.mark.django_db(transaction=True)
def test_websocket_connects_are_limited_per_client_even_unauthenticated(settings):
    settings.RATE_LIMIT_WS_CONNECT_IP = "2/minute"
    codes = asyncio.run(_close_codes([_socket() for _ in range(3)] + [_socket(ip="198.51.100.1")]))
    unauthenticated = consumers.CLOSE_UNAUTHENTICATED
    assert codes == [unauthenticated, unauthenticated, consumers.CLOSE_THROTTLED, unauthenticated]
