"""End to end through the Prowlarr API: AudioBookRequest's calls (indexer list, search, grab, fetching the
downloadUrl without the key) find a book on the MyAnonamouse fake, the grab makes Flotilla fetch its .torrent
with the session cookie, and the job runs from a loopback swarm: on the built-in engine (real daphne and
`runengine` processes, real HTTP) and on a real transmission-daemon (grabbed with `downloadClientId`, one of
the user's torrent servers)."""

from __future__ import annotations

import hashlib
import posixpath

import bencodepy
import httpx
import pytest
from django.test import Client

from billing.services import current_plan
from downloads.models import Job, Status
from downloads.swarm import sha256_file
from indexers.models import JobSource
from servers import clients as server_clients
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.e2e.conftest import wait_for
from tests.indexers import prowlarr_client as abr
from tests.indexers.conftest import mam_indexer
from tests.servers import daemons
from tests.servers.conftest import drive, seed_to, server_for

pytestmark = [pytest.mark.e2e]

KEY = "flt_e2e_prowlarr" + "p" * 32
transmission = daemons.module_fixture("transmission")


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes, plan.max_active_jobs = 0, 0, 10  # done when downloaded
    plan.save()
    return user


def info_hash(torrent: bytes) -> str:
    return hashlib.sha1(bencodepy.encode(bencodepy.decode(torrent)[b"info"])).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_audiobookrequest_grab_runs_on_the_engine(alice, mam, tmp_path, swarm):
    published = swarm.publish("Project Hail Mary", {"01.m4b": 1 << 20, "cover.jpg": 70_000})
    mam.add("Project Hail Mary", torrent=published.torrent_bytes, size="1.07 MiB")
    indexer = mam_indexer(mam, alice)
    env = procs.process_env(tmp_path, **procs.ENGINE_ENV, INDEXERS_RATE_LIMITER="database")
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path), httpx.Client(timeout=30) as http:
        base = f"{base_url}/prowlarr/"  # as typed into ABR, trailing slash and all
        listed = http.get(posixpath.join(base, "api/v1/indexer"), headers=abr.key_headers(KEY))
        assert [i["id"] for i in abr.validate_indexers(listed.json())] == [indexer.pk]
        found = http.get(abr.search_url(base, "Project Hail Mary", [3030], [indexer.pk]),
                         headers=abr.key_headers(KEY, accept_json=True))
        assert found.status_code == 200 and found.headers["content-type"].startswith("application/json")
        [release] = abr.validate_search(found.json())
        grabbed = http.post(posixpath.join(base, "api/v1/search"), headers=abr.key_headers(KEY),
                            json={"guid": release["guid"], "indexerId": release["indexerId"]})
        assert grabbed.status_code == 200, grabbed.text
        torrent = http.get(release["downloadUrl"], headers={"User-Agent": abr.USER_AGENT})  # no key header
        assert torrent.status_code == 200 and info_hash(torrent.content) == published.info_hash
        job_id = JobSource.objects.get(indexer=indexer).job_id
        wait_for(lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED, "the grabbed job completes", 90)
        listing = http.get(f"{base_url}/api/v1/jobs/{job_id}/files/", headers={"X-Api-Key": KEY}).json()
        assert {e["path"] for e in listing["files"]} == set(published.files)
        for entry in listing["files"]:
            body = http.get(entry["download_url"]).content
            assert hashlib.sha256(body).hexdigest() == published.files[entry["path"]]
    job = Job.objects.get(pk=job_id)
    assert job.user == alice and job.backend == "engine" and job.info_hash == published.info_hash
    assert len(mam.paths("/tor/download.php")) == 2  # the grab, then ABR's info-hash fetch through the proxy


@pytest.mark.django_db
def test_grab_into_a_real_transmission_daemon(alice, mam, transmission, swarm):
    server = server_for(transmission, alice)
    published = swarm.publish("Artemis", {"artemis.m4b": 1 << 20})
    mam.add("Artemis", torrent=published.torrent_bytes, size="1 MiB")
    indexer = mam_indexer(mam, alice)
    client = Client()
    try:
        found = client.get(abr.search_url("/prowlarr", "Artemis", [3030], None),
                           headers=abr.key_headers(KEY, accept_json=True))
        [release] = abr.validate_search(found.json())
        grabbed = client.post("/prowlarr/api/v1/search", content_type="application/json",
                              headers=abr.key_headers(KEY),
                              data={"guid": release["guid"], "indexerId": indexer.pk, "downloadClientId": server.pk})
        assert grabbed.status_code == 200, grabbed.content
        job = JobSource.objects.select_related("job").get(indexer=indexer).job
        assert job.backend == server.backend_name and job.info_hash == published.info_hash
        drive()
        seed_to(swarm, published, transmission)
        wait_for(lambda: (drive(), Job.objects.get(pk=job.pk).status == Status.COMPLETED)[1],
                 "the job completes on transmission", 60)
        for path, digest in published.files.items():  # "Artemis/artemis.m4b", where transmission put it
            assert sha256_file(transmission.download_dir / path) == digest
    finally:
        server_clients.forget(server.pk)


@pytest.mark.django_db
def test_another_users_torrent_server_is_refused(alice, other_user, mam, transmission):
    theirs = server_for(transmission, other_user)
    mam.add("Artemis")
    indexer = mam_indexer(mam, alice)
    client = Client()
    try:
        [release] = client.get("/prowlarr/api/v1/search", {"query": "Artemis"}, headers={"X-Api-Key": KEY}).json()
        refused = client.post("/prowlarr/api/v1/search", content_type="application/json",
                              headers={"X-Api-Key": KEY},
                              data={"guid": release["guid"], "indexerId": indexer.pk, "downloadClientId": theirs.pk})
        assert refused.status_code in (400, 403, 404) and set(refused.json()) <= {"message", "description"}
        assert str(theirs.pk) not in refused.json().get("description", "")
        assert not Job.objects.exists()
    finally:
        server_clients.forget(theirs.pk)
