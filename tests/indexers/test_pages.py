"""The Search and Indexers pages: gated like every page, render the user's own and the shared indexers (never
another user's), offer the user's backends for grabs, and never put a credential in the HTML."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanFactory
from tests.indexers.factories import IndexerFactory
from tests.servers.factories import TorrentServerFactory

pytestmark = pytest.mark.django_db

APIKEY = "torznab-key-5b1e0c9d77a04f"
MAM_ID = "mam-cookie-0d9e8f7a6b5c4d3e2f1a"
PAGES = ("/search/", "/indexers/")


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


def html_of(browser, path: str, **params) -> str:
    response = browser.get(path, params)
    assert response.status_code == 200
    return response.content.decode()


def page_json(html: str, element_id: str):
    start = html.index(f'id="{element_id}"')
    body = html[html.index(">", start) + 1:html.index("</script>", start)]
    return json.loads(body)


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_signed_in_user_who_accepted_the_policy(client, path):
    anonymous = client.get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("accounts:login"))
    client.force_login(UserFactory(accepted_policy_version=0))
    gated = client.get(path)
    assert gated.status_code == 302 and gated["Location"].startswith(reverse("accounts:policy"))


def test_search_page_offers_the_users_indexers_kinds_and_backends(browser, user):
    IndexerFactory(owner=user, name="My Jackett")
    IndexerFactory(owner=user, name="Switched off", enabled=False)
    server = TorrentServerFactory(owner=user, name="Seedbox", type="qbittorrent")
    html = html_of(browser, "/search/")
    assert 'data-search' in html and "js/search.js" in html
    assert "My Jackett" in html and "Switched off" not in html  # only what a search would ask
    for label in ("Movies", "TV", "Music", "Books", "Audiobooks"):
        assert f">{label}</option>" in html
    assert '<option value="engine">Built-in engine</option>' in html
    assert f'<option value="{server.backend_name}">Seedbox (qBittorrent)</option>' in html
    config = page_json(html, "search-config")
    assert config["apiSearch"] == "/api/v1/search/" and config["grabUrl"] == "/api/v1/search/0/grab/"
    assert config["kinds"]["audiobook"] == {"kind": "book", "categories": [3030]}


def test_search_page_without_indexers_calls_to_add_one(browser, user):
    html = html_of(browser, "/search/")
    assert "No indexers to search yet" in html
    assert f'href="{reverse("indexers:list")}?add=1"' in html
    assert 'id="search-form"' not in html


def test_search_page_echoes_the_query_escaped(browser, user):
    IndexerFactory(owner=user)
    html = html_of(browser, "/search/", q='"><script>alert(1)</script>')
    assert "<script>alert(1)" not in html
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


def test_indexers_page_shows_health_and_marks_shared_ones_read_only(browser, user):
    IndexerFactory(owner=user, name="Flaky", avg_response_ms=412.4, success_rate=0.6, consecutive_failures=3,
                   last_error="The indexer did not answer in time.", last_error_code="timeout")
    IndexerFactory(owner=None, name="Operator feed")
    html = html_of(browser, "/indexers/")
    assert "Flaky" in html and "412 ms" in html and "60 %" in html and "did not answer in time" in html
    rows = {r["name"]: r for r in page_json(html, "indexer-states")}
    assert rows["Operator feed"]["shared"] is True and rows["Flaky"]["shared"] is False
    assert "Shared" in html
    kinds = page_json(html, "indexers-config")["kinds"]
    assert [s["name"] for s in kinds["myanonamouse"]["secrets"]] == ["mam_id"]
    assert [s["name"] for s in kinds["torznab"]["secrets"]] == ["apikey"]
    assert kinds["yts"]["secrets"] == [] and kinds["yts"]["default_url"]


def test_pages_show_no_other_users_indexers(browser, user, other_user):
    IndexerFactory(owner=other_user, name="Bob's private tracker")
    IndexerFactory(owner=None, name="For another plan", shared_with_plan=PlanFactory(name="Gold"))
    IndexerFactory(owner=None, name="For everyone")
    for path in PAGES:
        html = html_of(browser, path)
        assert "Bob&#x27;s private tracker" not in html and "Bob's private tracker" not in html
        assert "For another plan" not in html
        assert "For everyone" in html


@pytest.mark.parametrize("path", PAGES)
def test_no_credential_ever_reaches_the_html(browser, user, path):
    IndexerFactory(owner=user, name="Feed", credentials=json.dumps({"apikey": APIKEY}))
    IndexerFactory(owner=user, name="MAM", kind="myanonamouse", credentials=json.dumps({"mam_id": MAM_ID}))
    IndexerFactory(owner=None, name="Shared feed", credentials=json.dumps({"apikey": APIKEY + "-shared"}))
    html = html_of(browser, path)
    assert APIKEY not in html and MAM_ID not in html
    if path == "/indexers/":
        names = {r["name"]: r["credential_names"] for r in page_json(html, "indexer-states")}
        assert names == {"Feed": ["apikey"], "MAM": ["mam_id"], "Shared feed": ["apikey"]}  # "set", not the value


@pytest.mark.parametrize("path", PAGES)
def test_query_count_does_not_grow_with_indexers(browser, user, path):
    IndexerFactory(owner=user)
    browser.get(path)  # warm the session and plan caches

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert browser.get(path).status_code == 200
        return len(queries)

    one = count()
    for _ in range(5):
        IndexerFactory(owner=user)
    IndexerFactory(owner=None)
    assert count() == one
