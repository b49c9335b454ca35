"""The bot check on registration (accounts/botcheck.py): ALTCHA solved here with the library's own solver,
Turnstile verified against the fake siteverify on 127.0.0.1, and `off`. A refused check is a form error
and creates nothing."""

from __future__ import annotations

import base64
import json
import time
import uuid

import altcha
import pytest
from django.urls import reverse

from accounts import botcheck
from accounts.checks import check_bot_check
from accounts.models import User
from tests.fakes.turnstile_fake import DUMMY_TOKEN, FAIL_SECRET, PASS_SECRET, FakeTurnstile

PASSWORD = "a sturdy passphrase 42"
SITEKEY = "0x4AAAAAAAflotillaTEST"
SECRET = "0x4AAAAAAAflotillaSECRETxxxxxxxxxxxx"
CLIENT_IP = "203.0.113.9"


def _register(client, email: str = "new@example.com", **extra):
    data = {"email": email, "password1": PASSWORD, "password2": PASSWORD, **extra}
    return client.post(reverse("accounts:register"), data, REMOTE_ADDR=CLIENT_IP)


def _refused(response, text: str) -> None:
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="form-errors"' in body and text in body


# --- ALTCHA ---------------------------------------------------------------------------------------------


@pytest.fixture
def altcha_on(settings):
    settings.BOT_CHECK = "altcha"
    settings.ALTCHA_COST = 1  # one PBKDF2 iteration per try: ~256 tries, a few milliseconds here
    settings.ALTCHA_EXPIRY = 600


def _challenge(client) -> dict:
    response = client.get(reverse("accounts:altcha_challenge"))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    return response.json()


def _solve(challenge: dict) -> str:
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=30)
    assert solution is not None
    return altcha.Payload(parsed, solution).to_base64()


def _b64(value) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


@pytest.mark.django_db
def test_register_page_renders_the_altcha_widget_and_its_vendored_script(client, altcha_on):
    body = client.get(reverse("accounts:register")).content.decode()
    assert '<altcha-widget challenge="/accounts/altcha/challenge/" name="altcha" auto="onsubmit"' in body
    assert 'src="/static/vendor/altcha/altcha.min.js"' in body
    assert "challenges.cloudflare.com" not in body


@pytest.mark.django_db
def test_challenge_is_signed_expires_and_follows_the_cost_setting(client, altcha_on, settings):
    settings.ALTCHA_COST = 7
    challenge = _challenge(client)
    params = challenge["parameters"]
    assert params["algorithm"] == "PBKDF2/SHA-256" and params["cost"] == 7 and params["keyPrefix"] == "00"
    assert abs(params["expiresAt"] - (time.time() + 600)) < 5
    assert len(challenge["signature"]) == 64
    assert _challenge(client)["parameters"]["nonce"] != params["nonce"]  # a new one each time


@pytest.mark.django_db
def test_challenge_endpoint_is_404_unless_altcha_and_registration_open(client, settings):
    settings.BOT_CHECK = "turnstile"
    assert client.get(reverse("accounts:altcha_challenge")).status_code == 404
    settings.BOT_CHECK = "altcha"
    settings.REGISTRATION_OPEN = False
    assert client.get(reverse("accounts:altcha_challenge")).status_code == 404
    settings.REGISTRATION_OPEN = True
    assert client.post(reverse("accounts:altcha_challenge")).status_code == 405


@pytest.mark.django_db
def test_register_with_a_solved_altcha_challenge_creates_the_account(client, altcha_on, mailoutbox):
    response = _register(client, altcha=_solve(_challenge(client)))
    assert response.status_code == 302
    assert User.objects.filter(email="new@example.com").exists()
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_register_without_an_altcha_answer_is_refused_and_creates_nothing(client, altcha_on, mailoutbox):
    _refused(_register(client), "Please let the bot check finish")
    _refused(_register(client, altcha=""), "Please let the bot check finish")
    assert not User.objects.exists()
    assert mailoutbox == []


def _wrong_payloads() -> dict[str, object]:
    """Builders of wrong answers, each given (a fresh challenge, its valid payload)."""

    def other_counter(challenge, payload):
        data = json.loads(base64.b64decode(payload))
        data["solution"]["counter"] += 1
        return _b64(data)

    def foreign_key(challenge, payload):
        forged = altcha.create_challenge("PBKDF2/SHA-256", 1, hmac_secret="not our key")
        return _solve(forged.to_dict())

    def cheaper_cost(challenge, payload):  # the signature covers the parameters
        data = json.loads(base64.b64decode(payload))
        data["challenge"]["parameters"]["keyPrefix"] = ""
        return _b64(data)

    def unsigned(challenge, payload):
        data = json.loads(base64.b64decode(payload))
        del data["challenge"]["signature"]
        return _b64(data)

    return {
        "other counter": other_counter,
        "signed with another key": foreign_key,
        "parameters changed": cheaper_cost,
        "unsigned": unsigned,
        "widget test mode": lambda c, p: _b64({"challenge": None, "solution": None, "test": True}),
        "json list": lambda c, p: _b64([1, 2]),
        "json string": lambda c, p: _b64("x"),
        "wrong types": lambda c, p: _b64({"challenge": {"parameters": []}, "solution": {"counter": "1"}}),
        "not base64": lambda c, p: "%%%not base64%%%",
        "huge": lambda c, p: "A" * 100_000,
        "counter out of range": lambda c, p: _b64({**json.loads(base64.b64decode(p)), "solution": {
            "counter": 2**40, "derivedKey": "00"}}),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(_wrong_payloads()))
def test_a_wrong_altcha_answer_is_refused_and_creates_nothing(client, altcha_on, name):
    challenge = _challenge(client)
    payload = _wrong_payloads()[name](challenge, _solve(challenge))
    _refused(_register(client, altcha=payload), "The bot check answer is not valid")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_used_altcha_answer_is_refused_the_second_time(client, altcha_on):
    payload = _solve(_challenge(client))
    assert _register(client, "first@example.com", altcha=payload).status_code == 302
    client.logout()
    _refused(_register(client, "second@example.com", altcha=payload), "already used")
    assert list(User.objects.values_list("email", flat=True)) == ["first@example.com"]


@pytest.mark.django_db
def test_bot_check_runs_after_the_form_and_before_the_rate_limit(client, altcha_on, settings):
    settings.RATE_LIMIT_REGISTER_IP = "1/hour"
    payload = _solve(_challenge(client))
    # The form is wrong (passwords differ): the bot check is not reached, its answer stays usable.
    response = client.post(reverse("accounts:register"), {"email": "a@example.com", "password1": PASSWORD,
                           "password2": PASSWORD + "x", "altcha": payload}, REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 200
    # A bot failing the check does not use up the address's sign-up either.
    _refused(_register(client, "bot@example.com", altcha="nonsense"), "not valid")
    assert _register(client, "a@example.com", altcha=payload).status_code == 302
    client.logout()
    # The rate limit still holds for solved checks.
    assert _register(client, "b@example.com", altcha=_solve(_challenge(client))).status_code == 429


@pytest.mark.django_db
def test_an_expired_altcha_challenge_is_refused(client, altcha_on):
    expired = botcheck.new_challenge(expires_at=int(time.time()) - 1)
    _refused(_register(client, altcha=_solve(expired)), "The bot check expired")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_altcha_hmac_key_setting_signs_challenges(client, altcha_on, settings):
    settings.ALTCHA_HMAC_KEY = "an operator's own key"
    payload = _solve(_challenge(client))
    settings.ALTCHA_HMAC_KEY = ""  # back to the key derived from SECRET_KEY: the old signature is void
    _refused(_register(client, altcha=payload), "not valid")
    settings.ALTCHA_HMAC_KEY = "an operator's own key"
    assert _register(client, altcha=payload).status_code == 302


# --- Turnstile ------------------------------------------------------------------------------------------


@pytest.fixture
def fake(settings):
    fake = FakeTurnstile().serve()
    fake.add_widget(SITEKEY, SECRET, hostname="testserver")
    settings.BOT_CHECK = "turnstile"
    settings.TURNSTILE_SITE_KEY = SITEKEY
    settings.TURNSTILE_SECRET_KEY = SECRET
    settings.TURNSTILE_VERIFY_URL = fake.verify_url
    yield fake
    fake.stop()


def _turnstile(client, fake, email: str = "new@example.com", **issue):
    token = fake.issue_token(SITEKEY, action=issue.pop("action", "register"), **issue)
    return _register(client, email, **{"cf-turnstile-response": token}), token


@pytest.mark.django_db
def test_register_page_renders_the_turnstile_widget(client, fake):
    body = client.get(reverse("accounts:register")).content.decode()
    assert f'data-sitekey="{SITEKEY}"' in body and 'data-action="register"' in body
    assert '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer>' in body
    assert "altcha" not in body


@pytest.mark.django_db
def test_register_with_a_valid_turnstile_token_creates_the_account(client, fake):
    response, token = _turnstile(client, fake)
    assert response.status_code == 302
    assert User.objects.filter(email="new@example.com").exists()
    (request,) = fake.requests
    assert request.method == "POST" and request.content_type == "application/x-www-form-urlencoded"
    assert request.fields["secret"] == SECRET and request.fields["response"] == token
    assert request.fields["remoteip"] == CLIENT_IP
    assert uuid.UUID(request.fields["idempotency_key"]).version == 4


@pytest.mark.django_db
def test_a_turnstile_token_the_service_refuses_creates_nothing(client, fake):
    _refused(_register(client, **{"cf-turnstile-response": "0.forged"}), "The bot check failed")
    _refused(_register(client), "Please complete the bot check")
    _refused(_register(client, **{"cf-turnstile-response": "x" * 2049}), "not valid")
    assert len(fake.requests) == 1  # an empty or oversized token is refused without asking
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_replayed_turnstile_token_is_refused(client, fake):
    response, token = _turnstile(client, fake, "first@example.com")
    assert response.status_code == 302
    client.logout()
    _refused(_register(client, "second@example.com", **{"cf-turnstile-response": token}), "already used")
    assert list(User.objects.values_list("email", flat=True)) == ["first@example.com"]


@pytest.mark.django_db
def test_a_turnstile_token_older_than_300_seconds_is_refused(client, fake):
    token = fake.issue_token(SITEKEY, action="register")
    fake.advance(301)
    _refused(_register(client, **{"cf-turnstile-response": token}), "expired or was already used")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_turnstile_token_solved_for_another_action_is_refused(client, fake):
    response, _ = _turnstile(client, fake, action="login")
    _refused(response, "not valid")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_wrong_secret_key_says_the_server_is_misconfigured(client, fake, settings, caplog):
    settings.TURNSTILE_SECRET_KEY = "0x4AAAAAAAsomeoneElsesSecret"
    response, _ = _turnstile(client, fake)
    _refused(response, "misconfigured")
    assert "invalid-input-secret" in caplog.text
    assert not User.objects.exists()


@pytest.mark.django_db
def test_turnstile_down_is_a_clear_refusal_not_a_500(client, fake):
    token = fake.issue_token(SITEKEY, action="register")
    fake.stop()
    _refused(_register(client, **{"cf-turnstile-response": token}), "could not be verified just now")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_5xx_is_retried_once_with_the_same_idempotency_key(client, fake):
    fake.fail_next(502)
    response, _ = _turnstile(client, fake)
    assert response.status_code == 302
    first, second = fake.requests
    assert first.fields["idempotency_key"] == second.fields["idempotency_key"]


@pytest.mark.django_db
@pytest.mark.parametrize("status, body", [(500, ""), (200, "<html>Cloudflare is having a moment</html>")])
def test_turnstile_failing_twice_or_answering_garbage_refuses(client, fake, status, body):
    fake.fail_next(status, body, times=2)
    response, _ = _turnstile(client, fake)
    _refused(response, "could not be verified just now")
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("secret, created", [(PASS_SECRET, True), (FAIL_SECRET, False)])
def test_cloudflare_dummy_secret_keys(client, fake, settings, secret, created):
    settings.TURNSTILE_SECRET_KEY = secret
    response = _register(client, **{"cf-turnstile-response": DUMMY_TOKEN})
    assert response.status_code == (302 if created else 400)
    assert User.objects.filter(email="new@example.com").exists() is created


# --- off, and the system check ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_off_shows_no_widget_and_registers_without_an_answer(client, settings):
    settings.BOT_CHECK = "off"
    body = client.get(reverse("accounts:register")).content.decode()
    assert "altcha" not in body and "turnstile" not in body
    assert _register(client).status_code == 302


def test_system_check_refuses_turnstile_without_keys_and_unknown_modes(settings):
    settings.BOT_CHECK = "turnstile"
    settings.TURNSTILE_SITE_KEY, settings.TURNSTILE_SECRET_KEY = SITEKEY, ""
    assert [e.id for e in check_bot_check(None)] == ["accounts.E003"]
    settings.TURNSTILE_SITE_KEY, settings.TURNSTILE_SECRET_KEY = "", SECRET
    assert [e.id for e in check_bot_check(None)] == ["accounts.E003"]
    settings.TURNSTILE_SITE_KEY = SITEKEY
    assert check_bot_check(None) == []
    settings.BOT_CHECK = "recaptcha"
    assert [e.id for e in check_bot_check(None)] == ["accounts.E002"]
    settings.BOT_CHECK, settings.ALTCHA_COST = "altcha", 0
    assert [e.id for e in check_bot_check(None)] == ["accounts.E004"]
    settings.BOT_CHECK = "off"
    assert check_bot_check(None) == []
