"""The fake siteverify (tests/fakes/turnstile_fake.py) answers as Cloudflare documents it, spoken to over
HTTP with a plain client in every body format Cloudflare accepts. If the fake drifts from the documented
contract, these fail before the bot-check tests that rely on it."""

from __future__ import annotations

import datetime

import httpx
import pytest

from tests.fakes.turnstile_fake import (
    DUMMY_TOKEN,
    FAIL_SECRET,
    PASS_SECRET,
    SPENT_SECRET,
    TOKEN_TTL,
    FakeTurnstile,
)

SITEKEY, SECRET = "0x4AAAAAAAcontract", "0x4AAAAAAAcontractSECRET"


@pytest.fixture
def fake():
    fake = FakeTurnstile().serve()
    fake.add_widget(SITEKEY, SECRET, hostname="flotilla.example")
    fake.add_widget("0x4AAAAAAAother", "0x4AAAAAAAotherSECRET")
    yield fake
    fake.stop()


def verify(fake, how: str = "form", **fields) -> dict:
    if how == "json":
        response = httpx.post(fake.verify_url, json=fields)
    elif how == "multipart":
        response = httpx.post(fake.verify_url, files={k: (None, v) for k, v in fields.items()})
    else:
        response = httpx.post(fake.verify_url, data=fields)
    assert response.headers["content-type"] == "application/json"  # "always returns JSON responses"
    return response.json()


@pytest.mark.parametrize("how", ["form", "json", "multipart"])
def test_a_valid_token_passes_with_the_documented_fields(fake, how):
    token = fake.issue_token(SITEKEY, action="register", cdata="session-42")
    answer = verify(fake, how, secret=SECRET, response=token, remoteip="203.0.113.9",
                    idempotency_key="6f5e1d0c-4b3a-4c2d-9e8f-7a6b5c4d3e2f")
    assert answer["success"] is True and answer["error-codes"] == []
    assert answer["hostname"] == "flotilla.example"
    assert answer["action"] == "register" and answer["cdata"] == "session-42"
    assert answer["challenge_ts"].endswith("Z")
    solved = datetime.datetime.fromisoformat(answer["challenge_ts"].replace("Z", "+00:00"))
    assert abs(solved.timestamp() - fake.now()) < 5


def test_a_token_is_valid_once(fake):
    token = fake.issue_token(SITEKEY)
    assert verify(fake, secret=SECRET, response=token)["success"] is True
    assert verify(fake, secret=SECRET, response=token) == {"success": False, "error-codes": ["timeout-or-duplicate"]}


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(fake):
    token = fake.issue_token(SITEKEY)
    first = verify(fake, secret=SECRET, response=token, idempotency_key="k-1")
    assert first["success"] is True
    assert verify(fake, secret=SECRET, response=token, idempotency_key="k-1") == first
    assert verify(fake, secret=SECRET, response=token, idempotency_key="k-2")["error-codes"] == [
        "timeout-or-duplicate"]


def test_a_token_expires_after_300_seconds(fake):
    fresh, stale = fake.issue_token(SITEKEY), fake.issue_token(SITEKEY)
    fake.advance(TOKEN_TTL - 1)
    assert verify(fake, secret=SECRET, response=fresh)["success"] is True
    fake.advance(2)
    assert verify(fake, secret=SECRET, response=stale)["error-codes"] == ["timeout-or-duplicate"]


@pytest.mark.parametrize("fields, code", [
    ({"response": "0.abc"}, "missing-input-secret"),
    ({"secret": "0x4AAAAAAAunknown", "response": "0.abc"}, "invalid-input-secret"),
    ({"secret": SECRET}, "missing-input-response"),
    ({"secret": SECRET, "response": "0.never-issued"}, "invalid-input-response"),
    ({"secret": SECRET, "response": "x" * 2049}, "invalid-input-response"),
    ({"secret": SECRET, "response": DUMMY_TOKEN}, "invalid-input-response"),  # real secrets refuse it
])
def test_documented_error_codes(fake, fields, code):
    assert verify(fake, **fields) == {"success": False, "error-codes": [code]}


def test_a_token_of_another_widget_is_invalid_for_this_secret(fake):
    token = fake.issue_token("0x4AAAAAAAother")
    assert verify(fake, secret=SECRET, response=token)["error-codes"] == ["invalid-input-response"]


@pytest.mark.parametrize("secret, success, codes", [
    (PASS_SECRET, True, []),
    (FAIL_SECRET, False, ["invalid-input-response"]),
    (SPENT_SECRET, False, ["timeout-or-duplicate"]),
])
def test_dummy_secret_keys(fake, secret, success, codes):
    answer = verify(fake, secret=secret, response=DUMMY_TOKEN)
    assert answer["success"] is success and answer["error-codes"] == codes


def test_an_unreadable_body_is_bad_request_and_faults_are_served(fake):
    response = httpx.post(fake.verify_url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error-codes"] == ["bad-request"]
    fake.fail_next(503)
    response = httpx.post(fake.verify_url, data={"secret": SECRET, "response": "0.x"})
    assert response.status_code == 503 and response.json()["error-codes"] == ["internal-error"]
    assert len(fake.requests) == 2
