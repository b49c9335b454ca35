"""A real BitTorrent swarm on 127.0.0.1, no internet: tracker + libtorrent seeder + deterministic payloads.

For the test suite, benchmarks and `manage.py demo_swarm` ("try it offline"). Imports libtorrent, so only
commands, tests and benchmarks import this package; the web process never does.

    with Swarm(tmp_dir) as swarm:
        album = swarm.publish("album", {"01.flac": 3 << 20, "cover.jpg": 200_000})
        album.magnet, album.torrent_path, album.files   # {"album/01.flac": sha256, ...}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from downloads.swarm.payload import (
    TorrentMeta,
    clean_relative_path,
    make_payload,
    make_torrent,
    sha256_file,
    torrent_meta,
)
from downloads.swarm.seeder import Seeder, SeederError
from downloads.swarm.tracker import Tracker, bencode

__all__ = [
    "Published", "Seeder", "SeederError", "Swarm", "TorrentMeta", "Tracker", "bencode", "make_payload",
    "make_torrent", "sha256_file", "torrent_meta",
]


@dataclass(frozen=True)
class Published:
    """One seeded torrent. `files` maps the path a downloader gets inside its save_path → sha256:
    `<name>` for a single file, `<name>/<sub path>` for a folder."""

    name: str
    info_hash: str
    magnet: str
    torrent_bytes: bytes
    torrent_path: Path
    files: dict[str, str]
    sizes: dict[str, int]
    size: int
    save_path: Path  # the seeder's copy: save_path / name


class Swarm:
    """A tracker, a seeder and the payloads they serve, under one directory.

    Pass a running `tracker`/`seeder` to share them (they are then left running on close); otherwise the
    swarm starts its own. `payload_cache` (a directory) keeps generated payloads so that publishing the same
    name/files/seed again only hard-links them.
    """

    def __init__(self, directory: Path | str, *, tracker: Tracker | None = None, seeder: Seeder | None = None,
                 payload_cache: Path | str | None = None, piece_size: int | None = None) -> None:
        self.directory = Path(directory)
        self.payload_dir = self.directory / "payload"
        self.torrent_dir = self.directory / "torrents"
        self._own_tracker, self._own_seeder = tracker is None, seeder is None
        self.tracker = tracker or Tracker().start()
        self.seeder = seeder or Seeder()
        self.payload_cache = Path(payload_cache) if payload_cache else None
        self.piece_size = piece_size
        self.published: dict[str, Published] = {}

    def publish(self, name: str, files: int | Mapping[str, int], *, seed: int | str | None = None,
                upload_limit: int | None = None, piece_size: int | None = None) -> Published:
        """Create the payload (`files` = a size for one file named `name`, or {sub path: size} for a folder
        named `name`), build its .torrent pointing at the tracker, seed it and return its record."""
        name = clean_relative_path(name)
        if "/" in name or name in self.published:
            raise ValueError(f"bad or duplicate torrent name: {name!r}")
        if (self.payload_dir / name).exists():  # a .torrent of a folder takes everything in it, leftovers too
            raise ValueError(f"{self.payload_dir / name} already exists")
        spec = {name: files} if isinstance(files, int) else {f"{name}/{clean_relative_path(k)}": v
                                                              for k, v in files.items()}
        hashes = self._materialize(spec, name if seed is None else seed)
        torrent = make_torrent(self.payload_dir / name, [self.tracker.announce_url], piece_size or self.piece_size)
        meta = torrent_meta(torrent)
        self.torrent_dir.mkdir(parents=True, exist_ok=True)
        torrent_path = self.torrent_dir / f"{name}.torrent"
        torrent_path.write_bytes(torrent)
        self.seeder.add(torrent, self.payload_dir, upload_limit=upload_limit)
        record = Published(name=name, info_hash=meta.info_hash, magnet=meta.magnet, torrent_bytes=torrent,
                           torrent_path=torrent_path, files=hashes, sizes=dict(spec), size=sum(spec.values()),
                           save_path=self.payload_dir)
        self.published[name] = record
        return record

    def _materialize(self, spec: dict[str, int], seed: int | str) -> dict[str, str]:
        if self.payload_cache is None:
            return make_payload(self.payload_dir, spec, seed)
        key = hashlib.sha256(json.dumps([sorted(spec.items()), str(seed)]).encode()).hexdigest()[:32]
        cached = self.payload_cache / key
        if not (cached / "sha256.json").exists():
            # Built aside and renamed into place, so a half-written payload is never taken for a cached one.
            tmp = self.payload_cache / f"{key}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            hashes = make_payload(tmp / "data", spec, seed)
            (tmp / "sha256.json").write_text(json.dumps(hashes))
            try:
                os.replace(tmp, cached)
            except OSError:  # another process got there first
                shutil.rmtree(tmp, ignore_errors=True)
        hashes = json.loads((cached / "sha256.json").read_text())
        for rel in spec:
            target = self.payload_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # the seeder only reads its copy, so sharing the inode is safe
                os.link(cached / "data" / rel, target)
            except OSError:
                shutil.copyfile(cached / "data" / rel, target)
        return hashes

    def close(self) -> None:
        if self._own_seeder:
            self.seeder.close()
        elif not self.seeder.closed:
            for record in self.published.values():
                self.seeder.remove(record.info_hash)
        if self._own_tracker:
            self.tracker.stop()

    def __enter__(self) -> Swarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
