"""Every error on an API route, wherever it is raised (DRF, Django's request parsing, the URL resolver, a
middleware), has the {"code", "detail"} shape; bodies over DATA_UPLOAD_MAX_MEMORY_SIZE are a 413."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.services import create_api_key
from downloads.models import Job


@pytest.fixture
def key_client(user):
    _key, raw = create_api_key(user, "tests")
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


@pytest.fixture
def session_client(user):
    """A browser session with CSRF enforced: Django's CSRF check reads the form body itself."""
    client = Client(raise_request_exception=False, enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = "t" * 32
    return client


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.fixture
def small_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_limit_is_413_too_large(key_client, small_limit, content_type):
    body = b'{"magnet": "' + b"a" * (128 * 1024) + b'"}'
    _error(key_client.generic("POST", "/api/v1/jobs/", body, content_type=content_type), 413, "too_large")
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_20_mb_json_body_at_the_default_limit_is_413(key_client):
    body = b'{"magnet": "' + b"a" * (20 * 1024 * 1024) + b'"}'
    _error(key_client.generic("POST", "/api/v1/jobs/", body, content_type="application/json"), 413, "too_large")


@pytest.mark.django_db
def test_a_body_over_the_limit_read_by_the_csrf_middleware_is_413_json(session_client, small_limit):
    """With a session, CsrfViewMiddleware reads the form before DRF sees the request."""
    response = session_client.generic("POST", "/api/v1/jobs/", b"magnet=" + b"a" * (128 * 1024),
                                      content_type="application/x-www-form-urlencoded",
                                      HTTP_X_CSRFTOKEN="t" * 32)
    _error(response, 413, "too_large")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/jobs/", "/api/v1/servers/", "/api/v1/seedr/add/", "/api/v1/torrents/"])
def test_multipart_without_a_boundary_is_a_400_with_the_shape(key_client, session_client, path):
    for client, extra in ((key_client, {}), (session_client, {"HTTP_X_CSRFTOKEN": "t" * 32})):
        response = client.generic("POST", path, b"x=1", content_type="multipart/form-data", **extra)
        assert response.status_code == 400, response.content[:300]
        assert response["Content-Type"] == "application/json" and set(response.json()) >= {"code", "detail"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/nope", "/api/v1/jobs/abc/", "/api/v1/jobs/1/nope/",
                                  "/api/v1/jobs/99999999999999999999999/"])
def test_unknown_api_routes_are_404_json(key_client, path):
    _error(key_client.get(path), 404, "not_found")
    _error(key_client.post(path, {}, format="json"), 404 if "jobs/9" not in path else 405,
           "not_found" if "jobs/9" not in path else "method_not_allowed")


@pytest.mark.django_db
def test_a_page_posting_json_gets_json_errors_and_a_page_gets_html(session_client, small_limit):
    response = session_client.generic("POST", "/", b"x=" + b"a" * (128 * 1024),
                                      content_type="application/x-www-form-urlencoded",
                                      HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN="t" * 32)
    _error(response, 413, "too_large")
    html = session_client.generic("POST", "/", b"x=" + b"a" * (128 * 1024),
                                  content_type="application/x-www-form-urlencoded",
                                  HTTP_ACCEPT="text/html", HTTP_X_CSRFTOKEN="t" * 32)
    assert html.status_code == 413 and html["Content-Type"].startswith("text/html")
    assert Client().get("/no-such-page/", HTTP_ACCEPT="text/html")["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_an_unexpected_error_on_an_api_route_is_a_json_500(key_client, monkeypatch):
    from downloads import api

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(api.JobViewSet, "list", boom)
    _error(key_client.get("/api/v1/jobs/"), 500, "server_error")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/jobs/1/pause/", "/api/v1/jobs/1/cancel/", "/api/v1/seedr/retry/",
                                  "/api/v1/servers/1/test/"])
def test_action_routes_answer_405_with_the_shape_and_allow(key_client, path):
    body = _error(key_client.delete(path), 405, "method_not_allowed")
    assert "DELETE" in body["detail"]
    # Allow is an unordered list; DRF builds some views' from a set, whose order follows the process's hash seed.
    assert {m.strip() for m in key_client.delete(path)["Allow"].split(",")} == {"POST", "OPTIONS"}
