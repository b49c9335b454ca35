"""The loopback swarm (downloads.swarm) against real libtorrent sessions and real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote_from_bytes, urlencode

import libtorrent as lt
import pytest
from django.core.management import CommandError, call_command

from downloads.management.commands.demo_swarm import split_sizes
from downloads.swarm import Seeder, SeederError, Swarm, Tracker, make_payload, make_torrent, sha256_file, torrent_meta
from tests.procs import ROOT, process_env
from tests.swarm import Leecher

ALBUM = {"01 - intro.flac": 700_000, "cd2/02 - outro.flac": 1_300_000, "cover.jpg": 50_000}


def downloaded_hashes(root: Path, record) -> dict[str, str]:
    return {rel: sha256_file(root / rel) for rel in record.files}


# --- payloads and .torrent files -------------------------------------------------------------------


def test_payload_is_reproducible_from_its_seed(tmp_path):
    first = make_payload(tmp_path / "a", {"x.bin": 300_000, "d/y.bin": 5}, seed=7)
    again = make_payload(tmp_path / "b", {"x.bin": 300_000, "d/y.bin": 5, "z.bin": 10}, seed=7)
    other = make_payload(tmp_path / "c", {"x.bin": 300_000}, seed=8)

    assert {k: again[k] for k in first} == first  # adding a file leaves the others' bytes alone
    assert other["x.bin"] != first["x.bin"]
    assert (tmp_path / "a/x.bin").stat().st_size == 300_000
    assert first["x.bin"] == hashlib.sha256((tmp_path / "a/x.bin").read_bytes()).hexdigest()
    assert first["d/y.bin"] == sha256_file(tmp_path / "a/d/y.bin")


@pytest.mark.parametrize("bad", ["../escape.bin", "/abs.bin", "a//b", "a/./b", ""])
def test_payload_refuses_paths_outside_its_folder(tmp_path, bad):
    with pytest.raises(ValueError, match="clean relative path"):
        make_payload(tmp_path / "p", {"fine.bin": 1, bad: 1})
    assert not (tmp_path / "p").exists()  # checked before anything is written


def test_torrent_for_a_folder_is_v1_multi_file_with_tracker_and_magnet(tmp_path):
    make_payload(tmp_path / "album", ALBUM)
    raw = make_torrent(tmp_path / "album", ["http://127.0.0.1:9/announce"], piece_size=32 * 1024)
    decoded = lt.bdecode(raw)
    info = decoded[b"info"]

    meta = torrent_meta(raw)
    # The info-hash is the SHA-1 of the bencoded info dict, computed here independently of libtorrent.
    assert meta.info_hash == hashlib.sha1(lt.bencode(info)).hexdigest()
    assert decoded[b"announce"] == b"http://127.0.0.1:9/announce"
    assert b"meta version" not in info and b"piece layers" not in decoded  # v1 only, no padding files
    assert info[b"name"] == b"album" and info[b"piece length"] == 32 * 1024
    assert sorted(meta.files) == sorted((f"album/{rel}", size) for rel, size in ALBUM.items())
    assert meta.size == sum(ALBUM.values())
    assert meta.magnet.startswith(f"magnet:?xt=urn:btih:{meta.info_hash}&dn=album&tr=http%3a%2f%2f127.0.0.1%3a9")


def test_torrent_for_one_file_is_single_file(tmp_path):
    make_payload(tmp_path, {"movie.mkv": 100_000})
    meta = torrent_meta(make_torrent(tmp_path / "movie.mkv"))
    info = lt.bdecode(make_torrent(tmp_path / "movie.mkv"))[b"info"]

    assert info[b"length"] == 100_000 and b"files" not in info
    assert meta.files == (("movie.mkv", 100_000),) and meta.name == "movie.mkv"


def test_torrent_of_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_torrent(tmp_path / "nothing")


# --- the tracker over HTTP ---------------------------------------------------------------------------


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def announce(tracker: Tracker, info_hash: bytes, port: int, *, peer_id: bytes | None = None, **params) -> dict:
    query = {"port": port, "uploaded": 0, "downloaded": 0, "left": 0, **params}
    raw = (f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(peer_id or b'-TT0001-%012d' % port)}"
           f"&{urlencode(query)}")
    status, body = http_get(f"{tracker.announce_url}?{raw}")
    assert status == 200
    return lt.bdecode(body)


def compact_peers(blob: bytes) -> list[tuple[str, int]]:
    return [(socket.inet_ntoa(blob[i:i + 4]), struct.unpack(">H", blob[i + 4:i + 6])[0])
            for i in range(0, len(blob), 6)]


@pytest.fixture
def own_tracker():
    with Tracker() as running:
        yield running


def test_tracker_never_hands_a_peer_its_own_address(own_tracker):
    ih = bytes(range(20))
    first = announce(own_tracker, ih, 6001, left=0, event="started")
    second = announce(own_tracker, ih, 6002, left=500, event="started")
    again = announce(own_tracker, ih, 6001, left=0)

    assert first[b"peers"] == b""
    assert compact_peers(second[b"peers"]) == [("127.0.0.1", 6001)]
    assert compact_peers(again[b"peers"]) == [("127.0.0.1", 6002)]
    assert (again[b"complete"], again[b"incomplete"]) == (1, 1)
    assert again[b"interval"] == 60 and again[b"min interval"] == 5


def test_tracker_non_compact_list_with_and_without_peer_ids(own_tracker):
    ih = b"\xff" * 20  # not valid UTF-8: the raw bytes must survive the query string
    announce(own_tracker, ih, 6001, peer_id=b"A" * 20)
    full = announce(own_tracker, ih, 6002, compact=0)
    bare = announce(own_tracker, ih, 6002, compact=0, no_peer_id=1)

    assert full[b"peers"] == [{b"ip": b"127.0.0.1", b"port": 6001, b"peer id": b"A" * 20}]
    assert bare[b"peers"] == [{b"ip": b"127.0.0.1", b"port": 6001}]


def test_tracker_scrape_counts_seeds_leechers_and_completions(own_tracker):
    ih, other = b"s" * 20, b"t" * 20
    announce(own_tracker, ih, 6001, left=0)
    announce(own_tracker, ih, 6002, left=10, event="started")
    announce(own_tracker, ih, 6003, left=0, event="completed")
    announce(own_tracker, ih, 6003, left=0, event="stopped")
    announce(own_tracker, other, 6001, left=3)

    status, body = http_get(f"{own_tracker.scrape_url}?info_hash={quote_from_bytes(ih)}")
    everything = lt.bdecode(http_get(own_tracker.scrape_url)[1])[b"files"]

    assert status == 200
    assert lt.bdecode(body) == {b"files": {ih: {b"complete": 1, b"incomplete": 1, b"downloaded": 1}}}
    assert set(everything) == {ih, other}
    assert [(p.port, p.is_seed) for p in own_tracker.peers(ih.hex())] == [(6001, True), (6002, False)]


@pytest.mark.parametrize(("query", "reason"), [
    ("peer_id=" + "p" * 20 + "&port=1", b"missing info_hash"),
    ("info_hash=short&peer_id=" + "p" * 20 + "&port=1", b"info_hash must be 20 bytes, got 5"),
    ("info_hash=" + "i" * 20 + "&port=1", b"missing peer_id"),
    ("info_hash=" + "i" * 20 + "&peer_id=" + "p" * 20, b"missing port"),
    ("info_hash=" + "i" * 20 + "&peer_id=" + "p" * 20 + "&port=70000", b"invalid port"),
    ("info_hash=" + "i" * 20 + "&peer_id=" + "p" * 20 + "&port=%B2", b"invalid port"),  # "²" passes isdigit()
    ("info_hash=" + "i" * 20 + "&peer_id=" + "p" * 20 + "&port=1&left=-5", b"invalid left"),
    ("info_hash=" + "i" * 20 + "&peer_id=" + "p" * 20 + "&port=1&event=exploded", b"invalid event"),
])
def test_tracker_answers_bad_announces_with_a_failure_reason(own_tracker, query, reason):
    status, body = http_get(f"{own_tracker.announce_url}?{query}")

    assert status == 200  # BitTorrent convention: the failure is in the bencoded body
    assert lt.bdecode(body) == {b"failure reason": reason}
    assert own_tracker.state.scrape([]) == {}  # nothing half-recorded


def test_tracker_readiness_and_unknown_paths(own_tracker):
    assert http_get(own_tracker.url + "/") == (200, b"flotilla loopback tracker ok\n")
    assert http_get(own_tracker.url + "/stats")[0] == 404


def test_stopped_tracker_frees_its_port():
    tracker = Tracker().start()
    port = tracker.port
    tracker.stop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- downloads from the swarm ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["single", "folder"])
@pytest.mark.parametrize("by", ["torrent", "magnet"])
def test_plain_libtorrent_downloads_from_the_swarm(swarm, leecher, tmp_path, shape, by):
    record = swarm.publish("movie.mkv", 3_000_000) if shape == "single" else swarm.publish("album", ALBUM)
    handle = leecher.add(record.torrent_bytes if by == "torrent" else record.magnet, tmp_path / "dl")

    leecher.wait_complete(handle)

    expected = {"movie.mkv"} if shape == "single" else {f"album/{rel}" for rel in ALBUM}
    assert set(record.files) == expected
    assert downloaded_hashes(tmp_path / "dl", record) == record.files
    assert swarm.seeder.uploaded_bytes(record.info_hash) == record.size


def test_download_over_utp_as_libtorrent_does_by_default(swarm, tmp_path):
    record = swarm.publish("album", ALBUM)
    client = Leecher(enable_outgoing_utp=True)
    try:
        client.wait_complete(client.add(record.magnet, tmp_path / "dl"))
    finally:
        client.close()

    assert downloaded_hashes(tmp_path / "dl", record) == record.files
    assert "utp" in swarm.seeder.incoming


def test_the_test_leecher_dials_over_tcp(swarm, leecher, tmp_path):
    record = swarm.publish("movie.mkv", 100_000)
    leecher.wait_complete(leecher.add(record.torrent_bytes, tmp_path / "dl"))

    assert list(swarm.seeder.incoming) == ["tcp"]


def test_published_record_describes_what_is_seeded(swarm):
    record = swarm.publish("album", ALBUM)

    assert record.torrent_path.read_bytes() == record.torrent_bytes
    assert record.info_hash == torrent_meta(record.torrent_bytes).info_hash
    assert record.sizes == {f"album/{rel}": size for rel, size in ALBUM.items()}
    assert record.size == sum(ALBUM.values())
    assert downloaded_hashes(record.save_path, record) == record.files
    assert f"tr={swarm.tracker.announce_url.replace(':', '%3a').replace('/', '%2f')}" in record.magnet
    with pytest.raises(ValueError, match="duplicate"):
        swarm.publish("album", {"x": 1})
    with pytest.raises(ValueError):
        swarm.publish("a/b", 1)


def test_publish_refuses_a_payload_folder_that_already_exists(swarm):
    (swarm.payload_dir / "album").mkdir(parents=True)
    (swarm.payload_dir / "album" / "leftover.bin").write_bytes(b"x")  # would silently join the torrent

    with pytest.raises(ValueError, match="already exists"):
        swarm.publish("album", ALBUM)


def test_seeder_announces_itself_as_a_seed(swarm):
    record = swarm.publish("movie.mkv", 100_000)

    peers = swarm.tracker.peers(record.info_hash)

    assert [(p.ip, p.port, p.left) for p in peers] == [("127.0.0.1", swarm.seeder.port, 0)]


def test_closing_a_seeder_takes_it_off_the_tracker(tracker, tmp_path):
    with Swarm(tmp_path, tracker=tracker) as swarm:
        record = swarm.publish("bye.bin", 10_000)
        port = swarm.seeder.port
        assert [p.port for p in tracker.peers(record.info_hash)] == [port]

    assert port not in [p.port for p in tracker.peers(record.info_hash)]


def test_force_reannounce_puts_the_seeder_back_on_the_tracker(swarm):
    record = swarm.publish("movie.mkv", 100_000)
    # Someone (here: us) tells the tracker the seeder left; the tracker keys peers by address and port.
    announce(swarm.tracker, bytes.fromhex(record.info_hash), swarm.seeder.port, event="stopped")
    assert swarm.tracker.peers(record.info_hash) == []

    swarm.seeder.force_reannounce()

    deadline = time.monotonic() + 10
    while not swarm.tracker.peers(record.info_hash):
        assert time.monotonic() < deadline, "seeder did not re-announce"
        time.sleep(0.05)
    assert swarm.tracker.peers(record.info_hash)[0].port == swarm.seeder.port


def test_seeder_can_dial_a_peer_that_has_no_tracker(swarm, leecher, tmp_path):
    record = swarm.publish("movie.mkv", 1_000_000)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(record.torrent_bytes)
    params.save_path = str(tmp_path / "dl")
    params.trackers = []
    params.flags |= lt.torrent_flags.override_trackers
    handle = leecher.session.add_torrent(params)
    leecher.wait(handle, lambda st: st.state == lt.torrent_status.downloading, 10, "downloading state")

    swarm.seeder.connect(record.info_hash, ("127.0.0.1", leecher.port))

    leecher.wait_complete(handle)
    assert downloaded_hashes(tmp_path / "dl", record) == record.files


def test_a_restarted_downloader_with_the_data_downloads_nothing_again(swarm, tmp_path):
    record = swarm.publish("album", ALBUM)
    first = Leecher()
    try:
        first.wait_complete(first.add(record.torrent_bytes, tmp_path / "dl"))
    finally:
        first.close()
    uploaded = swarm.seeder.uploaded_bytes(record.info_hash)
    assert uploaded == record.size

    second = Leecher()  # same save_path: libtorrent checks the files and finds them complete
    try:
        handle = second.add(record.magnet, tmp_path / "dl")
        second.wait_complete(handle)
    finally:
        second.close()

    assert swarm.seeder.uploaded_bytes(record.info_hash) == uploaded


def test_upload_limit_throttles_then_lifting_it_finishes(swarm, leecher, tmp_path):
    size = 8 << 20
    record = swarm.publish("slow.bin", size, upload_limit=256 * 1024)
    handle = leecher.add(record.torrent_bytes, tmp_path / "dl")

    # Once the first pieces are in, look: at 256 KiB/s half of 8 MiB is many seconds away, while
    # unthrottled the whole file arrives in one burst on loopback (the next assertions would then fail).
    leecher.wait(handle, lambda st: st.total_wanted_done >= 64 * 1024, 30, "first pieces")
    status = handle.status()
    assert not status.is_seeding
    assert status.total_wanted_done < size // 2
    assert 0 < swarm.seeder.uploaded_bytes(record.info_hash) < size // 2

    swarm.seeder.set_upload_limit(record.info_hash, None)
    leecher.wait_complete(handle)
    assert downloaded_hashes(tmp_path / "dl", record) == record.files


def test_seeder_refuses_unknown_torrents(seeder):
    with pytest.raises(SeederError, match="not seeding"):
        seeder.uploaded_bytes("0" * 40)


def test_seeder_reads_back_the_port_it_really_got():
    with Seeder() as first:
        taken = first.port
        with Seeder(port=taken) as second:  # libtorrent moves to another port instead of failing
            assert second.port not in (0, taken)


def test_payload_cache_reuses_generated_bytes(tracker, tmp_path):
    cache = tmp_path / "cache"
    with Swarm(tmp_path / "one", tracker=tracker, payload_cache=cache) as one:
        first = one.publish("album", ALBUM)
    with Swarm(tmp_path / "two", tracker=tracker, payload_cache=cache) as two:
        second = two.publish("album", ALBUM)

    assert first.files == second.files and first.info_hash == second.info_hash
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1
    reused = second.save_path / "album" / "cover.jpg"
    assert reused.stat().st_ino == (first.save_path / "album" / "cover.jpg").stat().st_ino


def test_demo_swarm_refuses_a_taken_tracker_port_and_restores_signal_handlers(tracker):
    before = signal.getsignal(signal.SIGTERM)

    with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{tracker.port}"):
        call_command("demo_swarm", "--tracker-port", str(tracker.port), "--size-mib", "1")

    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(("total", "count", "sizes"), [(10, 1, [10]), (10, 3, [4, 3, 3]), (8 << 20, 2, [4 << 20] * 2)])
def test_demo_swarm_splits_the_size_over_its_files(total, count, sizes):
    assert split_sizes(total, count) == sizes


# --- manage.py demo_swarm as a real process ------------------------------------------------------------


@pytest.mark.e2e
def test_demo_swarm_command_serves_what_it_prints(tmp_path, leecher):
    env = process_env(tmp_path / "data")  # the test's keys: no "generated a key" banners in the output
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "demo_swarm", "--size-mib", "3", "--files", "3", "--dir", str(tmp_path / "demo")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = read_until(proc, "Ctrl-C to stop", timeout=60)
        output = "\n".join(lines)
        magnet = re.search(r"magnet:\?\S+", output).group(0)
        torrent_path = Path(re.search(r"torrent: (\S+)", output).group(1))
        files = dict((path, digest) for digest, path in re.findall(r"sha256 ([0-9a-f]{64})\s+\d+\s+(\S+)", output))
        assert sorted(files) == [f"flotilla-demo/file-0{i}.bin" for i in (1, 2, 3)]
        assert torrent_meta(torrent_path.read_bytes()).magnet == magnet

        handle = leecher.add(magnet, tmp_path / "dl")
        leecher.wait_complete(handle)
        assert {rel: sha256_file(tmp_path / "dl" / rel) for rel in files} == files

        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, rest
    assert rest.rstrip().endswith("Stopped.")


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"demo_swarm exited ({proc.wait()}):\n" + "".join(lines))
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError("demo_swarm printed no magnet in time:\n" + "\n".join(lines))
