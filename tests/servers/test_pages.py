"""The servers page, and the dashboard's server choice, filter, badge and error badges."""

from __future__ import annotations

import pytest
from django.test import Client

from downloads.models import Status
from tests.downloads.factories import JobFactory
from tests.servers.factories import TorrentServerFactory


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_servers_page_lists_the_users_servers_with_status(browser, user):
    TorrentServerFactory(owner=user, name="Seedbox", status="error", status_message="Cannot connect")
    page = browser.get("/servers/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Seedbox" in html and "Cannot connect" in html and "js/servers.js" in html
    assert "pass" not in page.context["servers_json"][0]


@pytest.mark.django_db
def test_dashboard_offers_each_server_filters_by_it_and_badges_jobs_and_errors(browser, user):
    box = TorrentServerFactory(owner=user, name="Seedbox", type="qbittorrent", status="error",
                               status_message="Cannot connect")
    TorrentServerFactory(owner=user, name="Off", enabled=False)
    on_box = JobFactory(user=user, backend=box.backend_name, name="on-the-box", status=Status.DOWNLOADING)
    JobFactory(user=user, backend="engine", name="on-the-engine")

    html = browser.get("/").content.decode()
    assert f'<option value="{box.backend_name}">Seedbox (qBittorrent)</option>' in html  # add dialog choice
    assert "Off (" not in html  # a disabled server is not offered
    assert "Seedbox (qBittorrent)</span>" in html  # the job card's server badge
    assert "Seedbox: not answering" in html  # the error badge

    filtered = browser.get(f"/?backend={box.backend_name}")
    assert [c["id"] for c in filtered.context["cards"]] == [on_box.pk]
    assert filtered.context["config"]["backend"] == box.backend_name
    assert len(browser.get("/?backend=server:999").context["cards"]) == 2  # unknown value: no filter
