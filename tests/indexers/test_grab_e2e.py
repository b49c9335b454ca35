"""End to end: a search through the real web process finds a book on the MyAnonamouse fake, the grab makes
Flotilla fetch its .torrent with the session cookie, and the built-in engine (a real `runengine` process)
downloads it from a loopback swarm; the files that land are the published ones."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from billing.services import current_plan
from downloads.models import Job, Status
from indexers.models import JobSource
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.e2e.conftest import wait_for
from tests.fakes.mam_fake import FakeMam
from tests.indexers.conftest import mam_indexer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_e2e_indexers" + "i" * 33


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 0, 0  # complete as soon as downloaded
    plan.save()
    return user


def test_search_grab_and_the_engine_downloads_from_the_swarm(alice, tmp_path, swarm, settings):
    published = swarm.publish("Project Hail Mary", {"01.m4b": 1 << 20, "cover.jpg": 70_000})
    mam = FakeMam().serve()
    try:
        tid = mam.add("Project Hail Mary", torrent=published.torrent_bytes, size="1.07 MiB")
        indexer = mam_indexer(mam, alice)
        env = procs.process_env(tmp_path, **procs.ENGINE_ENV, INDEXERS_RATE_LIMITER="database")
        with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), httpx.Client(
                base_url=base_url, headers={"X-Api-Key": KEY}, timeout=30) as client:
            found = client.get("/api/v1/search/", params={"q": "{author:Andy Weir}{title:Hail Mary}", "kind": "book"})
            assert found.status_code == 200, found.text
            [result] = found.json()["results"]
            assert result["title"] == "Project Hail Mary by Andy Weir [ENG / M4B]"
            grabbed = client.post(f"/api/v1/search/{result['id']}/grab/", json={"backend": "engine"})
            assert grabbed.status_code == 201, grabbed.text
            job_id = grabbed.json()["id"]
            wait_for(lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED, "the grabbed job completes", 90)
            listing = client.get(f"/api/v1/jobs/{job_id}/files/").json()
            for entry in listing["files"]:
                body = httpx.get(entry["download_url"], timeout=30).content
                assert hashlib.sha256(body).hexdigest() == published.files[entry["path"]]
        source = JobSource.objects.get(job_id=job_id)
        assert source.indexer_id == indexer.pk and source.guid.endswith(f"/t/{tid}")
        assert len(mam.paths("/tor/download.php")) == 1
    finally:
        mam.stop()
