"""Secrets never reach disk or logs in plain text, proven on real processes.

daphne, a qcluster worker and `manage.py runengine` run an engine magnet job and an engine .torrent job whose
trackers carry passkeys (in the query, and in the path), and a job on a real transmission-daemon reached
with a password (created, tested with the right and a wrong password, submitted and delivered through the
API). While the engine jobs run (resume files on disk) and again after everything finished, the database
(the SQLite file byte for byte, and every row of every table on any vendor), every line every process
wrote and every file under DATA_DIR are searched for each secret, raw and url-, base64- and hex-encoded:
0 hits. The test also checks the secrets were really in play (libtorrent logged the failing passkey
trackers, the decrypted resume data holds the passkey URL), so it cannot pass by never touching them.
"""

from __future__ import annotations

import base64
import secrets
import urllib.parse
from pathlib import Path

import httpx
import libtorrent as lt
import pytest
from django.db import connection

from billing.services import current_plan
from downloads.engine.resume import MAGIC, ResumeStore
from downloads.models import Job, Status
from downloads.swarm import make_torrent, torrent_meta
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.e2e.conftest import wait_for
from tests.servers import daemons

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

transmission = daemons.module_fixture("transmission")

KEY = "flt_e2e_secrets" + "s" * 34
QUERY_PASSKEY = secrets.token_hex(16)  # 32 hex digits, the usual private-tracker passkey
PATH_PASSKEY = secrets.token_hex(16)
WRONG_PASSWORD = "wrong-" + secrets.token_urlsafe(12)


def encoded_forms(secret: str) -> dict[str, bytes]:
    """The byte strings that would betray `secret`: as is, url-encoded, hex, and base64 (standard and
    url-safe) at each of the three alignments it can have inside a longer base64 text."""
    raw = secret.encode()
    forms = {"raw": raw, "url": urllib.parse.quote(secret, safe="").encode(),
             "url+": urllib.parse.quote_plus(secret).encode(), "hex": raw.hex().encode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[4 if shift else 0: (shift + len(raw)) // 3 * 4]  # only characters made of secret bytes
        forms[f"b64/{shift}"] = core
        forms[f"b64url/{shift}"] = core.translate(bytes.maketrans(b"+/", b"-_"))
    return forms


def database_blobs() -> dict[str, bytes]:
    """The database as bytes: the SQLite files themselves, and every row of every table (any vendor)."""
    blobs = {}
    if connection.vendor == "sqlite":
        name = Path(connection.settings_dict["NAME"])
        for path in (name, name.with_name(name.name + "-wal"), name.with_name(name.name + "-journal")):
            if path.exists():
                blobs[f"db file {path.name}"] = path.read_bytes()
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {qn(table)}")  # table names from introspection
            rows = cursor.fetchall()
            blobs[f"table {table}"] = b"\n".join(
                b"\t".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row)
                for row in rows)
    return blobs


def files_under(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def hits(secret_values: dict[str, str], blobs: dict[str, bytes]) -> list[str]:
    found = []
    for label, secret in secret_values.items():
        for form, needle in encoded_forms(secret).items():
            found += [f"{label} ({form}) in {where}" for where, blob in blobs.items() if needle in blob]
    return found


@pytest.fixture
def alice(user):
    ApiKeyFactory(user=user, raw=KEY)
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes, plan.max_active_jobs = 0, 0, 0
    plan.save()
    return user


def passkey_trackers(tracker) -> list[str]:
    """One tracker with the passkey in its path (it answers 404, so libtorrent logs a tracker error quoting
    the URL), one on a closed port, then a working one (the loopback tracker ignores the extra parameter).
    libtorrent tries them in this order and stops at the first that answers."""
    return [f"{tracker.url}/{PATH_PASSKEY}/announce",
            f"http://127.0.0.1:{procs.free_port()}/announce?passkey={QUERY_PASSKEY}",
            f"{tracker.announce_url}?passkey={QUERY_PASSKEY}"]


def test_passkeys_and_server_passwords_reach_no_disk_and_no_log(alice, tmp_path, swarm, transmission, withhold):
    data_dir, log_dir = tmp_path / "data", tmp_path / "logs"
    log_dir.mkdir()
    env = procs.process_env(data_dir, **procs.ENGINE_ENV, SYNC_INTERVAL="0.2", PROGRESS_EVENT_INTERVAL="0.1")
    trackers = passkey_trackers(swarm.tracker)
    by_magnet = withhold("private-movie.bin", 6 << 20)  # half of it in the swarm until released
    by_torrent = swarm.publish("private-album", {"01.bin": 1 << 20, "02.bin": 600_000})
    on_server = swarm.publish("private-server.bin", 1 << 20)
    magnet = f"magnet:?xt=urn:btih:{by_magnet.info_hash}&dn=private-movie.bin" + "".join(
        f"&tr={urllib.parse.quote(url, safe='')}" for url in trackers)
    private_torrent = make_torrent(by_torrent.save_path / by_torrent.name, trackers)
    server_torrent = make_torrent(on_server.save_path / on_server.name, trackers)
    assert torrent_meta(private_torrent).info_hash == by_torrent.info_hash, "the seeder serves the same torrent"
    secret_values = {"query passkey": QUERY_PASSKEY, "path passkey": PATH_PASSKEY,
                     "server password": transmission.password, "wrong password": WRONG_PASSWORD}

    def search() -> list[str]:
        return hits(secret_values, database_blobs() | files_under(data_dir, log_dir))

    with procs.daphne(env, log_dir) as base_url, procs.qcluster(env, log_dir), procs.engine(env, log_dir), \
            httpx.Client(base_url=base_url, headers={"Authorization": f"Token {KEY}"}, timeout=30) as api:
        # The engine jobs, their passkeys in the magnet's `tr` and in the .torrent's announce list.
        created = api.post("/api/v1/jobs/", json={"magnet": magnet})
        assert created.status_code == 201, created.text
        uploaded = api.post("/api/v1/jobs/", files={"torrent": ("private.torrent", private_torrent)})
        assert uploaded.status_code == 201, uploaded.text
        magnet_id, torrent_id = created.json()["id"], uploaded.json()["id"]

        # The server: created with its password, tested with it and with a wrong one, then given a job.
        fields = transmission.server_fields(name="Seedbox", remote_path=str(transmission.download_dir),
                                            local_path=str(transmission.download_dir))
        server = api.post("/api/v1/servers/", json=fields)
        assert server.status_code == 201, server.text
        server_id = server.json()["id"]
        assert api.post(f"/api/v1/servers/{server_id}/test/").json()["status"] == "connected"
        api.patch(f"/api/v1/servers/{server_id}/", json={"password": WRONG_PASSWORD})
        assert api.post(f"/api/v1/servers/{server_id}/test/").json()["status_code"] == "server_auth"
        api.patch(f"/api/v1/servers/{server_id}/", json={"password": transmission.password})
        assert api.post(f"/api/v1/servers/{server_id}/test/").json()["status"] == "connected"
        on_server_job = api.post("/api/v1/jobs/", data={"backend": f"server:{server_id}"},
                                 files={"torrent": ("server.torrent", server_torrent)})
        assert on_server_job.status_code == 201, on_server_job.text
        server_job_id = on_server_job.json()["id"]

        # Mid-download: the magnet job's resume data is on disk (it cannot finish yet).
        store = ResumeStore(data_dir / "engine" / "resume")
        wait_for(lambda: store.path(magnet_id).exists() and Job.objects.get(pk=magnet_id).downloaded_bytes > 0,
                 "the magnet job downloading with resume data saved", 60)
        assert Job.objects.get(pk=magnet_id).status == Status.DOWNLOADING
        assert store.path(magnet_id).read_bytes().startswith(MAGIC)
        saved = lt.read_resume_data(store.read(magnet_id))
        assert set(trackers) <= set(saved.trackers), "the premise: resume data holds the passkey announce URL"
        assert search() == [], "while the jobs run"

        wait_for(lambda: Job.objects.get(pk=server_job_id).remote_id, "the worker to submit the server job", 30)
        swarm.seeder.connect(on_server.info_hash, ("127.0.0.1", transmission.peer_port))
        by_magnet.release()
        wait_for(lambda: {Job.objects.get(pk=i).status for i in (magnet_id, torrent_id, server_job_id)}
                 == {Status.COMPLETED}, "the three jobs to complete", 120)

    engine_log = "".join(p.read_text() for p in log_dir.glob("engine-*.log"))
    assert "tracker_error_alert" in engine_log, "libtorrent reported the failing passkey trackers"
    assert f"{swarm.tracker.url}/***/announce" in engine_log and "announce?passkey=***" in engine_log
    assert search() == [], "after everything finished"
