"""The sidebar's registry (config/nav.py): apps contribute entries; one whose page does not exist is not shown."""

from __future__ import annotations

import pytest

from config import nav
from tests.billing.factories import PlanAssignmentFactory, PlanFactory


@pytest.fixture
def client_user(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def registered():
    keys = []

    def add(entry: nav.NavEntry) -> nav.NavEntry:
        keys.append(entry.key)
        return nav.register(entry)

    yield add
    for key in keys:
        nav.unregister(key)


@pytest.mark.django_db
def test_entry_without_a_page_is_never_a_dead_link(client_user, registered):
    registered(nav.NavEntry("future", "Notifications", "accounts:notifications-not-built-yet", "bell", order=20))
    registered(nav.NavEntry("library", "Library", "downloads:dashboard", "play", order=30))
    html = client_user.get("/usage/").content.decode()
    sidebar = html[html.index('<aside class="sidebar"'):html.index("</aside>")]
    assert ">Notifications</a>" not in sidebar
    assert '<a href="/">Library</a>' in sidebar
    labels = [label for label in ("Downloads", "Library", "Servers", "Usage") if f">{label}</a>" in sidebar]
    assert labels == ["Downloads", "Library", "Servers", "Usage"]
    assert sidebar.index(">Library</a>") < sidebar.index(">Servers</a>")  # by order


@pytest.mark.django_db
def test_operator_entries_only_for_staff(client, user, admin_user):
    client.force_login(user)
    assert ">Admin</a>" not in client.get("/usage/").content.decode()
    client.force_login(admin_user)
    assert ">Admin</a>" in client.get("/usage/").content.decode()


@pytest.mark.django_db
def test_sidebar_shows_the_plan_badge_and_current_page(client_user, user):
    PlanAssignmentFactory(user=user, plan=PlanFactory(name="Gold"))
    html = client_user.get("/servers/").content.decode()
    assert '<span class="plan-badge" data-plan-badge>Gold</span>' in html
    assert 'href="/servers/" aria-current="page">Servers</a>' in html


def test_signed_out_pages_have_no_sidebar(client, db):
    html = client.get("/accounts/login/").content.decode()
    assert 'class="sidebar"' not in html and 'class="auth-shell"' in html
