"""Deterministic payloads and the .torrent/magnet that describe them, built with libtorrent itself."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import libtorrent as lt

CHUNK = 1 << 20
CREATOR = "Flotilla loopback swarm"

FileSpec = Mapping[str, int] | Iterable[tuple[str, int]]


def clean_relative_path(value: str) -> str:
    """A relative POSIX path with no empty, '.' or '..' part; anything else is a caller bug worth a ValueError."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(f"not a clean relative path: {value!r}")
    return str(path)


def _file_list(files: FileSpec) -> list[tuple[str, int]]:
    pairs = list(files.items()) if isinstance(files, Mapping) else [tuple(pair) for pair in files]
    if not pairs:
        raise ValueError("a payload needs at least one file")
    cleaned = []
    for rel, size in pairs:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"bad size for {rel!r}: {size!r}")
        cleaned.append((clean_relative_path(rel), size))
    if len({rel for rel, _ in cleaned}) != len(cleaned):
        raise ValueError("duplicate path in payload")
    return cleaned


def write_file(path: Path, size: int, seed: str) -> str:
    """Write `size` pseudo-random bytes reproducible from `seed`; return their sha256 (hex)."""
    # Not for secrets: the point is that the same seed gives the same bytes on every machine, fast (~0.5 GB/s).
    rng = random.Random(seed)  # noqa: S311
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left:
            block = rng.randbytes(min(CHUNK, left))
            fh.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def make_payload(directory: Path | str, files: FileSpec, seed: int | str = 0) -> dict[str, str]:
    """Write each (relative path, size) under `directory`; return {relative path: sha256 hex}.

    Each file's bytes depend only on `seed` and its own relative path, so adding a file to a payload
    leaves the others' contents (and hashes) unchanged.
    """
    root = Path(directory)
    return {rel: write_file(root / rel, size, f"{seed}:{rel}") for rel, size in _file_list(files)}


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def make_torrent(path: Path | str, trackers: Sequence[str] = (), piece_size: int | None = None, *,
                 private: bool = False, comment: str | None = None) -> bytes:
    """Bencoded v1 .torrent for a single file or a folder (multi-file, named after the folder).

    v1 only: hybrid v2 torrents add padding files and a second info-hash that older clients
    (transmission 3.00) and the v1-keyed parts of Flotilla do not need. `piece_size` None lets
    libtorrent choose (a power of two; it must otherwise be a multiple of 16 KiB).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    entries = lt.list_files(str(path))
    if not entries:
        raise ValueError(f"no files under {path}")
    creator = lt.create_torrent(entries, piece_size or 0, lt.create_torrent.v1_only)
    for tier, url in enumerate(trackers):
        creator.add_tracker(url, tier)
    creator.set_creator(CREATOR)
    creator.set_priv(private)
    if comment:
        creator.set_comment(comment)
    lt.set_piece_hashes(creator, str(path.parent))
    return lt.bencode(creator.generate())


@dataclass(frozen=True)
class TorrentMeta:
    """What a .torrent says about itself: v1 info-hash (hex), magnet (with its trackers), name, files."""

    info_hash: str
    magnet: str
    name: str
    size: int
    files: tuple[tuple[str, int], ...]
    piece_size: int
    num_pieces: int


def torrent_meta(torrent_bytes: bytes) -> TorrentMeta:
    info = lt.torrent_info(torrent_bytes)
    layout = info.layout()
    files = tuple((layout.file_path(i), layout.file_size(i)) for i in range(layout.num_files()))
    return TorrentMeta(
        info_hash=str(info.info_hashes().v1), magnet=lt.make_magnet_uri(info), name=info.name(),
        size=info.total_size(), files=files, piece_size=info.piece_length(), num_pieces=info.num_pieces(),
    )
