"""Validation of everything a user hands us to download: magnets and .torrent files.

Pure functions, no database: they either return a parsed value or raise `IntakeError` with a machine code
and a sentence the user can act on. Hostile input (bencode bombs, absurd lengths, `../` names) is refused
here, before anything is stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, urlsplit

import bencodepy
from django.conf import settings

from config.errors import ValidationFailed


class IntakeError(ValidationFailed):
    code = "invalid_input"


_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_B32 = re.compile(r"^[A-Za-z2-7]{32}$")
_HEX_MULTIHASH_SHA256 = re.compile(r"^1220[0-9a-fA-F]{64}$")
_ALLOWED_TRACKER_SCHEMES = {"http", "https", "udp", "wss"}


@dataclass(frozen=True)
class TorrentFileEntry:
    path: str
    size: int


@dataclass(frozen=True)
class ParsedTorrent:
    """What intake learned about a download before any backend saw it."""

    info_hash: str  # v1 btih hex when there is one, else the v2 sha256 hex
    name: str
    trackers: tuple[str, ...] = ()
    size: int | None = None
    files: tuple[TorrentFileEntry, ...] = field(default=())
    is_private: bool = False
    info_hash_v2: str = ""


# --- magnets ---------------------------------------------------------------------------------------


def parse_magnet(uri: str) -> ParsedTorrent:
    uri = (uri or "").strip()
    if not uri:
        raise IntakeError("Paste a magnet link.", code="magnet_empty")
    if len(uri) > settings.MAGNET_MAX_LENGTH:
        raise IntakeError(
            f"The magnet link is longer than {settings.MAGNET_MAX_LENGTH} characters.", code="magnet_too_long"
        )
    parts = urlsplit(uri)
    if parts.scheme.lower() != "magnet" or not parts.query:
        raise IntakeError("This is not a magnet link (it must start with 'magnet:?').", code="magnet_invalid")
    try:
        params = parse_qsl(parts.query, keep_blank_values=True, max_num_fields=settings.MAGNET_MAX_TRACKERS + 50)
    except ValueError:  # more fields than any honest magnet has
        raise IntakeError("The magnet link has too many parameters.", code="magnet_too_many_trackers") from None

    v1 = v2 = ""
    trackers: list[str] = []
    name = ""
    size: int | None = None
    for key, value in params:
        key = key.lower()
        if key == "xt" or key.startswith("xt."):
            v1, v2 = _parse_exact_topic(value, v1, v2)
        elif key == "tr":
            trackers.append(_clean_tracker(value))
        elif key == "dn":
            name = _clean_display_name(value)
        elif key == "xl":
            size = int(value) if value.isdigit() and len(value) < 20 else None
    if not (v1 or v2):
        raise IntakeError("The magnet link has no BitTorrent info-hash (xt=urn:btih:…).", code="magnet_no_hash")
    if len(trackers) > settings.MAGNET_MAX_TRACKERS:
        raise IntakeError(
            f"The magnet link lists more than {settings.MAGNET_MAX_TRACKERS} trackers.", code="magnet_too_many_trackers"
        )
    return ParsedTorrent(
        info_hash=v1 or v2,
        info_hash_v2=v2,
        name=name,
        trackers=tuple(dict.fromkeys(trackers)),
        size=size,
    )


def _parse_exact_topic(value: str, v1: str, v2: str) -> tuple[str, str]:
    lowered = value.lower()
    if lowered.startswith("urn:btih:"):
        digest = value[9:]
        if _HEX40.match(digest):
            return digest.lower(), v2
        if _B32.match(digest):
            return base64.b32decode(digest.upper()).hex(), v2
        raise IntakeError(
            "The info-hash must be 40 hexadecimal or 32 base32 characters.", code="magnet_bad_hash"
        )
    if lowered.startswith("urn:btmh:"):
        digest = value[9:]
        if not _HEX_MULTIHASH_SHA256.match(digest):
            raise IntakeError(
                "A v2 info-hash (btmh) must be a sha2-256 multihash: '1220' and 64 hex characters.",
                code="magnet_bad_hash",
            )
        return v1, digest[4:].lower()
    # Other URNs (e.g. ed2k) are legal in magnets but not ours: ignore them.
    return v1, v2


def _clean_tracker(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in _ALLOWED_TRACKER_SCHEMES or not parts.hostname or len(value) > 2048:
        raise IntakeError(f"Tracker '{value[:80]}' is not an http(s), udp or wss URL.", code="magnet_bad_tracker")
    return value


def _clean_display_name(value: str) -> str:
    value = "".join(ch for ch in value if ch.isprintable()).strip()
    return value[:255]


# --- .torrent files --------------------------------------------------------------------------------


def parse_torrent(data: bytes) -> ParsedTorrent:
    if not data:
        raise IntakeError("The .torrent file is empty.", code="torrent_empty")
    if len(data) > settings.TORRENT_MAX_BYTES:
        raise IntakeError(
            f"The .torrent file is larger than {settings.TORRENT_MAX_BYTES // 1024} KiB.", code="torrent_too_large"
        )
    if data[:1] != b"d":
        raise IntakeError("This is not a .torrent file.", code="torrent_invalid")
    try:
        # Size-capped input bounds the decoded structure; bencodepy is iterative enough for a capped input,
        # and a RecursionError from absurd nesting is caught below.
        meta = bencodepy.decode(data)
    except (bencodepy.BencodeDecodeError, RecursionError, ValueError, TypeError, IndexError) as exc:
        raise IntakeError(
            f"The .torrent file is not valid bencode ({type(exc).__name__}).", code="torrent_invalid"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get(b"info"), dict):
        raise IntakeError("The .torrent file has no 'info' dictionary.", code="torrent_invalid")
    info = meta[b"info"]
    name = _text(info.get(b"name.utf-8") or info.get(b"name"), "name")
    _check_component(name)
    files = _torrent_files(info, name)
    if not files:
        raise IntakeError("The torrent lists no files.", code="torrent_invalid")
    info_bytes = bencodepy.encode(info)
    has_v1 = b"pieces" in info
    v2 = hashlib.sha256(info_bytes).hexdigest() if info.get(b"meta version") == 2 else ""
    if not has_v1 and not v2:
        raise IntakeError("The torrent has neither v1 pieces nor a v2 file tree.", code="torrent_invalid")
    v1 = hashlib.sha1(info_bytes, usedforsecurity=False).hexdigest() if has_v1 else ""
    return ParsedTorrent(
        info_hash=v1 or v2,
        info_hash_v2=v2,
        name=name,
        trackers=tuple(_announce_list(meta)),
        size=sum(f.size for f in files),
        files=tuple(files),
        is_private=info.get(b"private") == 1,
    )


def _torrent_files(info: dict, name: str) -> list[TorrentFileEntry]:
    if b"files" in info:
        raw_files = info[b"files"]
        if not isinstance(raw_files, list):
            raise IntakeError("The torrent's file list is malformed.", code="torrent_invalid")
        if len(raw_files) > settings.TORRENT_MAX_FILES:
            raise IntakeError(
                f"The torrent lists more than {settings.TORRENT_MAX_FILES} files.", code="torrent_too_many_files"
            )
        entries = []
        for raw in raw_files:
            if not isinstance(raw, dict):
                raise IntakeError("The torrent's file list is malformed.", code="torrent_invalid")
            if isinstance(raw.get(b"attr"), bytes) and b"p" in raw[b"attr"]:
                continue  # a BEP 47 pad file: alignment filler, never written to disk by clients
            components = raw.get(b"path.utf-8") or raw.get(b"path")
            if not isinstance(components, list) or not components:
                raise IntakeError("A file in the torrent has no path.", code="torrent_invalid")
            parts = [_text(c, "path") for c in components]
            for part in parts:
                _check_component(part)
            entries.append(TorrentFileEntry(str(PurePosixPath(name, *parts)), _length(raw)))
        return entries
    if b"file tree" in info:  # pure v2 torrent
        return _v2_files(info[b"file tree"], PurePosixPath(name), budget=[settings.TORRENT_MAX_FILES])
    return [TorrentFileEntry(name, _length(info))]


def _v2_files(tree, prefix: PurePosixPath, budget: list[int], depth: int = 0) -> list[TorrentFileEntry]:
    if not isinstance(tree, dict) or depth > 64:
        raise IntakeError("The torrent's v2 file tree is malformed.", code="torrent_invalid")
    entries = []
    for key, node in tree.items():
        if key == b"" and isinstance(node, dict):
            budget[0] -= 1
            if budget[0] < 0:
                raise IntakeError("The torrent lists too many files.", code="torrent_too_many_files")
            entries.append(TorrentFileEntry(str(prefix), _length(node)))
            continue
        component = _text(key, "path")
        _check_component(component)
        entries.extend(_v2_files(node, prefix / component, budget, depth + 1))
    return entries


def _length(node: dict) -> int:
    length = node.get(b"length")
    if not isinstance(length, int) or length < 0 or length > 2**50:
        raise IntakeError("A file in the torrent has an invalid length.", code="torrent_invalid")
    return length


def _text(value, what: str) -> str:
    if not isinstance(value, bytes):
        raise IntakeError(f"The torrent's {what} is missing or not text.", code="torrent_invalid")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _check_component(part: str) -> None:
    """A path component that would leave the job folder, or cannot be a file name, is refused."""
    if (
        not part
        or part in {".", ".."}
        or "/" in part
        or "\\" in part
        or "\x00" in part
        or len(part.encode()) > 255
        or (len(part) >= 2 and part[1] == ":")  # C:foo on Windows-made torrents
    ):
        raise IntakeError(
            f"The torrent contains a file name that is not allowed: {part[:60]!r}.", code="torrent_unsafe_path"
        )


def _announce_list(meta: dict) -> list[str]:
    urls = []
    if isinstance(meta.get(b"announce"), bytes):
        urls.append(meta[b"announce"])
    for tier in meta.get(b"announce-list") or []:
        if isinstance(tier, list):
            urls.extend(u for u in tier if isinstance(u, bytes))
    out = []
    for raw in urls[: settings.MAGNET_MAX_TRACKERS]:
        url = raw.decode("utf-8", "replace")
        if urlsplit(url).scheme.lower() in _ALLOWED_TRACKER_SCHEMES:
            out.append(url)
    return list(dict.fromkeys(out))


def parse_metadata(info_section: bytes) -> ParsedTorrent:
    """Validate an info dictionary fetched from peers (a magnet's metadata) exactly like an uploaded file.

    libtorrent sanitises names on its own; checking the raw dictionary here is what lets the engine refuse a
    torrent whose names try to leave the job folder instead of silently downloading it under other names.
    """
    return parse_torrent(b"d4:info" + info_section + b"e")


def encode_torrent(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_torrent(stored: str) -> bytes:
    """The .torrent bytes of a job (stored as base64 in an encrypted column)."""
    return base64.b64decode(stored)


def split_batch(text: str) -> list[tuple[int, str]]:
    """Non-empty lines of a batch paste with their 1-based line numbers; capped."""
    lines = [(n, line.strip()) for n, line in enumerate((text or "").splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise IntakeError("Paste at least one magnet link, one per line.", code="batch_empty")
    if len(lines) > settings.BATCH_MAX_LINES:
        raise IntakeError(f"A batch holds at most {settings.BATCH_MAX_LINES} magnet links.", code="batch_too_large")
    return lines
