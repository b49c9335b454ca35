"""End to end: a torrent added through the qBittorrent API runs on the built-in engine from a loopback swarm;
the client sees it download, then `uploading` while a leecher takes data from it, then `pausedUP` (qBittorrent
5: stoppedUP) once the share limit it asked for is reached, with `content_path` holding the files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import qbittorrentapi

from billing.services import current_plan
from tests import procs
from tests.accounts.factories import ApiKeyFactory
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "flt_qbt_engine_" + "e" * 33


def test_add_through_the_api_download_seed_to_the_clients_ratio_and_import_path(user, tmp_path, swarm, leecher):
    ApiKeyFactory(user=user, raw=KEY)
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 5.0, 600  # the plan alone would seed for long
    plan.save()
    album = swarm.publish("Show.S01", {"e01.mkv": 3 << 20, "e02.mkv": 1 << 20, "info.nfo": 2_000})
    env = procs.process_env(tmp_path, **procs.ENGINE_ENV)
    with procs.daphne(env, tmp_path) as base_url, procs.engine(env, tmp_path):
        qbt = qbittorrentapi.Client(host=base_url + "/qbittorrent", username=user.email, password=KEY,
                                    REQUESTS_ARGS={"timeout": 30})
        qbt.auth_log_in()
        assert qbt.torrents_add(torrent_files={"Show.S01.torrent": album.torrent_bytes}, category="tv",
                                ratio_limit=0.25) == "Ok."

        def state() -> str:
            rows = qbt.torrents_info(category="tv")
            return rows[0].state if rows else ""

        wait_for(lambda: state() in ("uploading", "stalledUP"), "the engine seeding", 90)
        # Only our engine may serve the leecher now: the swarm's seeder stops sending.
        swarm.seeder.set_upload_limit(album.info_hash, 1)
        handle = leecher.add(album.torrent_bytes, tmp_path / "leech")
        # Slow until the client has seen "uploading": at 32 KiB/s the ratio's 1 MiB takes half a minute, so a
        # loaded machine cannot finish the upload between two looks; then at full speed to the ratio.
        handle.set_download_limit(32 * 1024)
        wait_for(lambda: state() == "uploading", "the client sees uploading", 60)
        handle.set_download_limit(-1)
        row = wait_for(lambda: next((r for r in qbt.torrents_info(category="tv") if r.state == "pausedUP"), None),
                       "seeding ended at the client's ratio", 90)
        assert row.ratio >= 0.25 and row.max_ratio == 0.25 and row.progress == 1
        assert row.content_path == row.save_path + "/Show.S01"
        content = Path(row.content_path)
        for path, digest in album.files.items():
            assert hashlib.sha256((content.parent / path).read_bytes()).hexdigest() == digest
