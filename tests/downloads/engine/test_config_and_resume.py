"""Session settings from Django settings, resume files, and the engine backend as other processes see it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from downloads import backends, dispatch
from downloads.engine.config import session_settings
from downloads.engine.resume import ResumeStore
from downloads.models import Job, ProcessHeartbeat
from tests.downloads.factories import JobFactory


def test_session_settings_follow_django_settings(settings):
    settings.ENGINE_LISTEN_INTERFACES = "127.0.0.1:7000"
    settings.ENGINE_DOWNLOAD_RATE_LIMIT = 1000
    settings.ENGINE_DHT = False
    settings.ENGINE_LIBTORRENT_SETTINGS = {"allow_multiple_connections_per_ip": True, "connections_limit": 5}
    pack = session_settings()
    assert pack["listen_interfaces"] == "127.0.0.1:7000"
    assert pack["download_rate_limit"] == 1000
    assert pack["enable_dht"] is False and pack["enable_upnp"] is True
    assert pack["allow_multiple_connections_per_ip"] is True
    assert pack["connections_limit"] == 5, "the raw overrides are applied last"
    assert pack["active_downloads"] == -1, "libtorrent's queue never pauses what Flotilla started"


@pytest.mark.parametrize("overrides, message", [
    ({"no_such_setting": 1}, "unknown libtorrent settings ['no_such_setting']"),
    ({"connections_limit": "many"}, "connections_limit must be a int"),
    (["not", "an", "object"], "must be a JSON object"),
])
def test_bad_raw_overrides_are_refused_with_a_clear_message(settings, overrides, message):
    settings.ENGINE_LIBTORRENT_SETTINGS = overrides
    with pytest.raises(ImproperlyConfigured, match=message.replace("[", r"\[").replace("]", r"\]")):
        session_settings()


def test_resume_store_writes_atomically_and_forgets(tmp_path):
    store = ResumeStore(tmp_path / "resume")
    assert store.read(7) is None
    store.write(7, b"first")
    store.write(7, b"second")
    assert store.read(7) == b"second"
    assert store.job_ids() == [7]
    assert sorted(p.name for p in (tmp_path / "resume").iterdir()) == [".lock", "7.resume"], "no temporary left"
    store.delete(7)
    store.delete(7)
    assert store.read(7) is None and store.job_ids() == []


def test_the_engine_backend_is_registered_everywhere_without_loading_libtorrent(tmp_path):
    backend = backends.get_backend("engine")
    assert backend is not None and backend.pulls_jobs
    # The web process (config.asgi with every app ready) must not pay for libtorrent.
    code = "import sys, config.asgi; print('libtorrent' in sys.modules, 'engine' in __import__('downloads.backends'," \
           " fromlist=['x']).registered())"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=settings.BASE_DIR)
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.django_db
def test_dispatcher_says_when_no_engine_is_running(user, settings):
    settings.ENGINE_HEARTBEAT_TIMEOUT = 60
    job = JobFactory(user=user)
    dispatch.dispatch_queued()
    job.refresh_from_db()
    assert job.status == "queued" and job.reason_code == dispatch.NO_BACKEND
    assert "engine" in job.reason

    ProcessHeartbeat.objects.create(name="e1", kind="engine", last_seen=timezone.now())
    other = JobFactory(user=user)
    dispatch.dispatch_queued()
    assert Job.objects.get(pk=other.pk).reason_code == "", "with an engine alive the job just waits to be claimed"
