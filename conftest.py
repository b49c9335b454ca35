"""Shared personas and settings for the whole suite."""

import os

import pytest
from rest_framework.test import APIClient

from tests.accounts.factories import UserFactory

# Real BitTorrent swarm fixtures (tracker, seeder, swarm, leecher); plugins may only be declared here.
pytest_plugins = ["tests.swarm"]


def pytest_configure(config):
    """In-process tests render templates without running collectstatic: plain static storage.
    (Real daphne subprocesses keep the manifest storage; tests/browser runs collectstatic for them.)"""
    from django.conf import settings

    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """A test database of this run's own on PostgreSQL: with the fixed `test_<name>`, a second run of the suite
    on the same server would drop and recreate the first one's database under it. (SQLite's test file is
    already per process: config/settings.py.)"""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture(autouse=True)
def _isolated_data_dir(settings, tmp_path):
    """Each test gets its own DATA_DIR/downloads; nothing touches the developer's var/."""
    settings.DOWNLOADS_DIR = tmp_path / "downloads"
    settings.DOWNLOADS_DIR.mkdir()
    # Real hashing costs ~0.1 s per user; tests create many. Login flows still run through Django's hasher API.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttles, stream slots and caches live in the process-wide cache: each test starts and ends empty
    (this run's keys only: a second copy of the suite may share the Redis database)."""
    from tests.caches import clear_this_runs_cache

    clear_this_runs_cache()
    yield
    clear_this_runs_cache()


@pytest.fixture
def user(db):
    return UserFactory(email="alice@example.com")


@pytest.fixture
def other_user(db):
    return UserFactory(email="mallory@example.com")


@pytest.fixture
def admin_user(db):
    """An operator as production makes one: role `admin` granted through the service (staff + the Operators
    group), not a superuser, so the console's permissions are tested for real."""
    from accounts.services import set_role

    return set_role(None, UserFactory(email="admin@example.com"), "admin")


@pytest.fixture
def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def other_client(other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    return client


@pytest.fixture
def mam():
    """The MyAnonamouse fake on 127.0.0.1 (tests/fakes/mam_fake.py), stopped after the test; a test module
    that needs it set up otherwise overrides it (`def mam(mam): ...`)."""
    from tests.fakes.mam_fake import FakeMam

    fake = FakeMam().serve()
    yield fake
    fake.stop()


@pytest.fixture(scope="session", autouse=True)
def _close_async_thread_connections(django_db_setup):
    """Websocket tests run ORM calls on asgiref's single worker thread; close its connection before the
    test database is dropped (PostgreSQL refuses to drop a database that still has a session)."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
