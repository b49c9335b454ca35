"""Hostile feeds: HTML instead of XML, a gigantic body, an XML bomb, non-UTF-8, 500s, a dripping or hanging
server, a redirect loop. Each ends as one indexer's error entry, on time; never an exception out of search."""

from __future__ import annotations

import time

import pytest

from indexers import services
from tests.indexers.conftest import mam_indexer, nyaa_indexer, torznab_indexer, yts_indexer

pytestmark = pytest.mark.django_db

CASES = [
    ("html", "bad_response"),
    ("bomb", "bad_response"),
    ("huge", "too_large"),
    ("redirect_loop", "redirect_loop"),
    ("drip", "timeout"),
    ("hang", "timeout"),
]


@pytest.mark.parametrize(("mode", "code"), CASES)
def test_hostile_torznab_feed_is_one_error_on_time(jackett, nyaa, user, settings, mode, code):
    settings.INDEXERS_MAX_RESPONSE_BYTES = 1024 * 1024
    nyaa.add("Frieren 01")
    bad = torznab_indexer(jackett, user, timeout=1.5)
    nyaa_indexer(nyaa, user)
    jackett.hostile = mode
    started = time.monotonic()
    outcome = services.search(user, "frieren")
    assert time.monotonic() - started < 1.5 + 1.0
    assert [(e["indexer"], e["code"]) for e in outcome.errors] == [(bad.pk, code)]
    assert [r.title for r in outcome.results] == ["Frieren 01"]  # the healthy one still answers


def test_non_utf8_feed_is_a_clean_error(nyaa, user):
    indexer = nyaa_indexer(nyaa, user)
    nyaa.hostile = "non_utf8"
    outcome = services.search(user, "x")
    assert outcome.errors == [{"indexer": indexer.pk, "name": indexer.name, "code": "bad_response",
                               "detail": "The indexer's answer is not valid XML (an HTML page or an error?)."}]


@pytest.mark.parametrize("status", [500, 502, 429])
def test_http_errors_are_reported_with_their_status(yts, user, status):
    indexer = yts_indexer(yts, user)
    yts.fail_next(status, "<html>oops</html>")
    [error] = services.search(user, "x").errors
    assert error["indexer"] == indexer.pk and (str(status) in error["detail"])


def test_mam_html_error_page_means_session_expired(mam, user):
    indexer = mam_indexer(mam, user)
    mam.fail_next(200, "Error, you are not signed in <br />")
    [error] = services.search(user, "x").errors
    assert error["code"] == "session_expired"
    indexer.refresh_from_db()
    assert indexer.in_backoff() and "Session expired" in services.health_message(indexer)


def test_wrong_json_types_from_yts_are_an_error_not_a_crash(yts, user):
    yts_indexer(yts, user)
    yts.fail_next(200, '{"status": "ok", "data": {"movies": "nope"}}', "application/json")
    [error] = services.search(user, "x").errors
    assert error["code"] == "bad_response"
    yts.fail_next(200, '[1, 2, 3]', "application/json")
    [error] = services.search(user, "x").errors
    assert error["code"] == "bad_response"


def test_internal_address_refused_when_the_operator_says_so(jackett, user, settings):
    settings.INDEXERS_ALLOW_INTERNAL = False
    torznab_indexer(jackett, user)
    [error] = services.search(user, "x").errors
    assert error["code"] == "url_internal" and jackett.requests == []
