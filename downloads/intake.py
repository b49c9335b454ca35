"""Validation of everything a user hands us to download: magnets and .torrent files.

Pure functions, no database: they either return a parsed value or raise `IntakeError` with a machine code
and a sentence the user can act on. Hostile input (bencode bombs, absurd lengths, `../` names, URLs that do
not parse) is refused here, before anything is stored.

What is accepted is what the engine's libtorrent reads *the same way*: the web process never loads
libtorrent, so intake follows its rules (BEP 3/9/52/53) and refuses what libtorrent would silently repair
(a renamed `..`, a dropped tracker, a name with control characters). tests/downloads/test_intake.py checks
every accepted input against `lt.parse_magnet_uri` / `lt.torrent_info`. Bencode is decoded by bencode2, a
strict decoder: only canonical bencode (sorted, unique keys; no `i03e`) is read, so the info dictionary
re-encoded is byte for byte the one in the file and its hash is the hash every client computes.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, urlsplit

import bencode2
from django.conf import settings

from config.errors import ValidationFailed


class IntakeError(ValidationFailed):
    code = "invalid_input"


_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_B32 = re.compile(r"[A-Za-z2-7]{32}")
_HEX_MULTIHASH_SHA256 = re.compile(r"1220[0-9a-fA-F]{64}")
_ASCII_DIGITS = re.compile(r"[0-9]{1,16}")  # str.isdigit() also says yes to '²' and '٣'
_ALLOWED_TRACKER_SCHEMES = {"http", "https", "udp", "wss"}
_TRACKER_MAX_LENGTH = 2048
# 1 PiB: past any real torrent, far below what a 64-bit size column holds (a sum of many lengths must fit too).
MAX_TOTAL_BYTES = 2**50
# libtorrent refuses larger pieces ("invalid or missing 'piece length'"); BEP 52 wants powers of two ≥ 16 KiB.
_MAX_PIECE_LENGTH = 2**28
_V2_MIN_PIECE_LENGTH = 16 * 1024
_MAX_PATH_CHARS = 1024  # JobFile.path
_MAX_PATH_BYTES = 2048  # leaves room for DATA_DIR under Linux's PATH_MAX
# Characters libtorrent drops or replaces in file names (so its paths would differ from ours) and that
# spoof what a name looks like: C0/C1 controls, DEL, and Unicode bidirectional controls.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


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


# --- magnets (BEP 9, BEP 53) ------------------------------------------------------------------------


def parse_magnet(uri: str) -> ParsedTorrent:
    uri = (uri or "").strip()
    if not uri:
        raise IntakeError("Paste a magnet link.", code="magnet_empty")
    if len(uri) > settings.MAGNET_MAX_LENGTH:
        raise IntakeError(
            f"The magnet link is longer than {settings.MAGNET_MAX_LENGTH} characters.", code="magnet_too_long"
        )
    # libtorrent reads only this exact, lower-case prefix; anything else would fail later in the engine.
    if not uri.startswith("magnet:?") or len(uri) == len("magnet:?"):
        raise IntakeError("This is not a magnet link (it must start with 'magnet:?').", code="magnet_invalid")
    v1 = v2 = name = ""
    trackers: list[str] = []
    size: int | None = None
    for key, value in _magnet_params(uri[len("magnet:?"):]):
        if key == "xt" or key.startswith("xt."):
            v1, v2 = _parse_exact_topic(value, v1, v2)
        elif key == "tr":
            trackers.append(_clean_tracker(value, position=len(trackers) + 1, code="magnet_bad_tracker"))
        elif key == "dn":
            name = _clean_display_name(value)
        elif key == "xl":
            size = _exact_length(value)
    if not (v1 or v2):
        raise IntakeError("The magnet link has no BitTorrent info-hash (xt=urn:btih:…).", code="magnet_no_hash")
    if len(trackers) > settings.MAGNET_MAX_TRACKERS:
        raise IntakeError(
            f"The magnet link lists more than {settings.MAGNET_MAX_TRACKERS} trackers.", code="magnet_too_many_trackers"
        )
    return ParsedTorrent(info_hash=v1 or v2, info_hash_v2=v2, name=name, trackers=tuple(dict.fromkeys(trackers)),
                         size=size)


def _magnet_params(query: str) -> list[tuple[str, str]]:
    try:
        # errors="strict": a %-escape that is not UTF-8 is garbage, not a name to guess at.
        params = parse_qsl(query, keep_blank_values=True, errors="strict",
                           max_num_fields=settings.MAGNET_MAX_TRACKERS + 50)
    except UnicodeDecodeError:
        raise IntakeError("The magnet link has %-encoded text that is not UTF-8.", code="magnet_invalid") from None
    except ValueError:  # more fields than any honest magnet has
        raise IntakeError("The magnet link has too many parameters.", code="magnet_too_many_trackers") from None
    return [(key.lower(), value) for key, value in params]


def _parse_exact_topic(value: str, v1: str, v2: str) -> tuple[str, str]:
    # The URN prefix is matched case-sensitively, as libtorrent does ('URN:BTIH:' is no info-hash to it).
    if value.startswith("urn:btih:"):
        return _same_or_refuse(v1, _btih(value[9:])), v2
    if value.startswith("urn:btmh:"):
        digest = value[9:]
        if not _HEX_MULTIHASH_SHA256.fullmatch(digest):
            raise IntakeError(
                "A v2 info-hash (btmh) must be a sha2-256 multihash: '1220' and 64 hex characters.",
                code="magnet_bad_hash",
            )
        return v1, _same_or_refuse(v2, digest[4:].lower())
    # Other URNs (e.g. ed2k) are legal in magnets but not ours: ignore them.
    return v1, v2


def _btih(digest: str) -> str:
    if _HEX40.fullmatch(digest):
        return digest.lower()
    if _B32.fullmatch(digest):
        return base64.b32decode(digest.upper()).hex()
    raise IntakeError("The info-hash must be 40 hexadecimal or 32 base32 characters.", code="magnet_bad_hash")


def _same_or_refuse(previous: str, digest: str) -> str:
    # libtorrent keeps the last one; which torrent the user meant is anyone's guess, so ask.
    if previous and previous != digest:
        raise IntakeError("The magnet link names two different info-hashes.", code="magnet_bad_hash")
    return digest


def _exact_length(value: str) -> int:
    if not _ASCII_DIGITS.fullmatch(value) or int(value) > MAX_TOTAL_BYTES:
        raise IntakeError("The magnet's size (xl) must be a whole number of bytes.", code="magnet_bad_size")
    return int(value)


def _clean_tracker(value: str, *, position: int, code: str) -> str:
    """A tracker URL that parses, with a host, over a protocol BitTorrent clients speak.

    The message names the tracker by position, never by URL: its path usually carries the user's passkey.
    """
    if not _tracker_url_ok(value):
        raise IntakeError(f"Tracker #{position} is not a valid http(s), udp or wss URL.", code=code)
    return value


def _tracker_url_ok(value: str) -> bool:
    if not value or len(value) > _TRACKER_MAX_LENGTH or not value.isascii() or not value.isprintable():
        return False
    if any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port  # both raise ValueError on '[::1' or ':99999'
    except ValueError:
        return False
    return parts.scheme.lower() in _ALLOWED_TRACKER_SCHEMES and bool(host)


def _clean_display_name(value: str) -> str:
    value = "".join(ch for ch in value if ch.isprintable()).strip()
    return value[:255]


# --- .torrent files (BEP 3, BEP 47, BEP 52) ---------------------------------------------------------


def parse_torrent(data: bytes) -> ParsedTorrent:
    meta = _decode(data)
    info = meta.get(b"info")
    if not isinstance(info, dict):
        raise IntakeError("The .torrent file has no 'info' dictionary.", code="torrent_invalid")
    name, files, total = _torrent_files(info)
    v1, v2 = _info_hashes(info, total)
    return ParsedTorrent(
        info_hash=v1 or v2,
        info_hash_v2=v2,
        name=name,
        trackers=_announce_list(meta),
        size=sum(f.size for f in files),
        files=tuple(files),
        is_private=info.get(b"private") == 1,
    )


def _decode(data: bytes) -> dict:
    if not data:
        raise IntakeError("The .torrent file is empty.", code="torrent_empty")
    if len(data) > settings.TORRENT_MAX_BYTES:
        raise IntakeError(
            f"The .torrent file is larger than {settings.TORRENT_MAX_BYTES // 1024} KiB.", code="torrent_too_large"
        )
    if data[:1] != b"d":
        raise IntakeError("This is not a .torrent file.", code="torrent_invalid")
    try:
        # bencode2 bounds nesting depth itself and refuses every non-canonical form, so what it returns
        # re-encodes to the very bytes we were given.
        return bencode2.bdecode(data)
    except bencode2.BencodeDecodeError as exc:
        reason = str(exc).split(".")[0][:80]  # "invalid dict, key not sorted", "exceeded maximum decode depth"
        raise IntakeError(f"The .torrent file is not valid bencode ({reason}).", code="torrent_invalid") from None


def _name(info: dict) -> str:
    # libtorrent prefers the UTF-8 variant when a (usually Windows-made) torrent has both.
    name = _text(info.get(b"name.utf-8") or info.get(b"name"), "name")
    _check_component(name)
    return name


def _info_hashes(info: dict, total: int) -> tuple[str, str]:
    """(v1 sha1 hex or "", v2 sha256 hex or ""), after the piece layout was checked as libtorrent does."""
    has_v1 = b"pieces" in info
    version = info.get(b"meta version", 1)
    if version not in (1, 2):
        raise IntakeError("The torrent's 'meta version' is not one this server reads.", code="torrent_invalid")
    has_v2 = version == 2
    if has_v2 and not isinstance(info.get(b"file tree"), dict):
        raise IntakeError("A v2 torrent must have a 'file tree'.", code="torrent_invalid")
    if not has_v1 and not has_v2:
        raise IntakeError("The torrent has neither v1 pieces nor a v2 file tree.", code="torrent_invalid")
    piece_length = _piece_length(info, v2=has_v2)
    if has_v1:
        _check_v1_pieces(info[b"pieces"], piece_length, total)
    info_bytes = bencode2.bencode(info)
    v1 = hashlib.sha1(info_bytes, usedforsecurity=False).hexdigest() if has_v1 else ""
    v2 = hashlib.sha256(info_bytes).hexdigest() if has_v2 else ""
    return v1, v2


def _piece_length(info: dict, *, v2: bool) -> int:
    length = info.get(b"piece length")
    if not isinstance(length, int) or not 0 < length <= _MAX_PIECE_LENGTH:
        raise IntakeError(f"The torrent's piece length must be 1 byte to {_MAX_PIECE_LENGTH // 2**20} MiB.",
                          code="torrent_invalid")
    if v2 and (length < _V2_MIN_PIECE_LENGTH or length & (length - 1)):
        raise IntakeError("A v2 torrent's piece length must be a power of two of at least 16 KiB.",
                          code="torrent_invalid")
    return length


def _check_v1_pieces(pieces, piece_length: int, total: int) -> None:
    expected = math.ceil(total / piece_length)
    if not isinstance(pieces, bytes) or len(pieces) != 20 * expected:
        raise IntakeError(
            f"The torrent should hold {expected} piece hashes for its size; its 'pieces' does not.",
            code="torrent_invalid",
        )


# --- files -----------------------------------------------------------------------------------------


def _torrent_files(info: dict) -> tuple[str, list[TorrentFileEntry], int]:
    """The torrent's name, the files a client writes (pad files left out) and the total its pieces cover
    (pad files in)."""
    name = _name(info)
    if b"files" in info:
        entries, total = _v1_files(info[b"files"], name)
    elif b"file tree" in info:  # pure v2 torrent
        entries = _v2_files(info[b"file tree"], PurePosixPath(name), budget=[settings.TORRENT_MAX_FILES])
        if _is_single_file_tree(info[b"file tree"]):
            # One file at the root is a single-file torrent: libtorrent names it (and the torrent) by that
            # file's key, whatever 'name' says. So do we, or the name shown would not be the file written.
            name = PurePosixPath(entries[0].path).name
            entries = [TorrentFileEntry(name, entries[0].size)]
        total = sum(f.size for f in entries)
    else:
        total = _length(info)
        entries = [TorrentFileEntry(name, total)]
    if not entries:
        raise IntakeError("The torrent lists no files.", code="torrent_invalid")
    if total == 0 or total > MAX_TOTAL_BYTES:
        raise IntakeError("The torrent's total size must be between 1 byte and 1 PiB.", code="torrent_invalid")
    _check_unique(entries)
    return name, entries, total


def _v1_files(raw_files, name: str) -> tuple[list[TorrentFileEntry], int]:
    if not isinstance(raw_files, list):
        raise IntakeError("The torrent's file list is malformed.", code="torrent_invalid")
    if len(raw_files) > settings.TORRENT_MAX_FILES:
        raise IntakeError(
            f"The torrent lists more than {settings.TORRENT_MAX_FILES} files.", code="torrent_too_many_files"
        )
    entries, total = [], 0
    for raw in raw_files:
        if not isinstance(raw, dict):
            raise IntakeError("The torrent's file list is malformed.", code="torrent_invalid")
        length = _length(raw)
        total += length
        if isinstance(raw.get(b"attr"), bytes) and b"p" in raw[b"attr"]:
            continue  # a BEP 47 pad file: alignment filler, never written to disk by clients
        components = raw.get(b"path.utf-8") or raw.get(b"path")
        if not isinstance(components, list) or not components:
            raise IntakeError("A file in the torrent has no path.", code="torrent_invalid")
        entries.append(TorrentFileEntry(_join(name, [_text(c, "path") for c in components]), length))
    return entries, total


def _v2_files(tree, prefix: PurePosixPath, budget: list[int], depth: int = 0) -> list[TorrentFileEntry]:
    if not isinstance(tree, dict) or depth > 64:
        raise IntakeError("The torrent's v2 file tree is malformed.", code="torrent_invalid")
    entries = []
    for key, node in tree.items():
        if key == b"":  # a file: {"": {"length": n, "pieces root": …}} and nothing beside it
            if len(tree) != 1 or not isinstance(node, dict) or depth == 0:
                raise IntakeError("The torrent's v2 file tree is malformed.", code="torrent_invalid")
            budget[0] -= 1
            if budget[0] < 0:
                raise IntakeError(
                    f"The torrent lists more than {settings.TORRENT_MAX_FILES} files.", code="torrent_too_many_files"
                )
            length = _length(node)
            root = node.get(b"pieces root")
            if length and not (isinstance(root, bytes) and len(root) == 32):
                raise IntakeError("A file in the v2 torrent has no valid 'pieces root'.", code="torrent_invalid")
            entries.append(TorrentFileEntry(_join(str(prefix), []), length))
            continue
        component = _text(key, "path")
        _check_component(component)
        entries.extend(_v2_files(node, prefix / component, budget, depth + 1))
    return entries


def _is_single_file_tree(tree: dict) -> bool:
    nodes = list(tree.values())
    return len(nodes) == 1 and isinstance(nodes[0], dict) and b"" in nodes[0]


def _join(name: str, parts: list[str]) -> str:
    for part in parts:
        _check_component(part)
    path = str(PurePosixPath(name, *parts))
    if len(path) > _MAX_PATH_CHARS or len(path.encode()) > _MAX_PATH_BYTES:
        raise IntakeError(f"A file path in the torrent is longer than {_MAX_PATH_CHARS} characters.",
                          code="torrent_unsafe_path")
    return path


def _check_unique(entries: list[TorrentFileEntry]) -> None:
    """Two files at one path, or a file where another needs a folder: libtorrent would rename one of them."""
    paths = {f.path for f in entries}
    if len(paths) != len(entries):
        raise IntakeError("The torrent lists the same file twice.", code="torrent_unsafe_path")
    for path in paths:
        for parent in PurePosixPath(path).parents:
            if str(parent) in paths:
                raise IntakeError("The torrent uses one name for a file and a folder.", code="torrent_unsafe_path")


def _length(node: dict) -> int:
    length = node.get(b"length")
    if not isinstance(length, int) or length < 0 or length > MAX_TOTAL_BYTES:
        raise IntakeError("A file in the torrent has an invalid length.", code="torrent_invalid")
    return length


def _text(value, what: str) -> str:
    if not isinstance(value, bytes):
        raise IntakeError(f"The torrent's {what} is missing or not text.", code="torrent_invalid")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        # libtorrent would write such a name as '_' characters: refused, so the files keep the names we list.
        raise IntakeError(f"The torrent's {what} is not UTF-8 text.", code="torrent_unsafe_path") from None


def _check_component(part: str) -> None:
    """A path component that would leave the job folder, or that libtorrent would rename, is refused."""
    if (
        not part
        or part in {".", ".."}
        or "/" in part
        or "\\" in part
        or len(part.encode()) > 255
        or (len(part) >= 2 and part[1] == ":")  # C:foo on Windows-made torrents
        or any(ch in _BIDI_CONTROLS or _is_control(ch) for ch in part)
    ):
        raise IntakeError(
            f"The torrent contains a file name that is not allowed: {part[:60]!r}.", code="torrent_unsafe_path"
        )


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0


def _announce_list(meta: dict) -> tuple[str, ...]:
    """Trackers of the torrent: malformed ones are refused, well-formed ones of other protocols ignored."""
    announce = meta.get(b"announce", b"")
    tiers = meta.get(b"announce-list", [])
    if not isinstance(announce, bytes) or not isinstance(tiers, list) or \
            not all(isinstance(tier, list) and all(isinstance(u, bytes) for u in tier) for tier in tiers):
        raise IntakeError("The torrent's tracker list ('announce-list') is malformed.", code="torrent_invalid")
    raw = [announce, *(url for tier in tiers for url in tier)]
    urls = [_tracker_text(url) for url in raw if url][: settings.MAGNET_MAX_TRACKERS]
    out = []
    for position, url in enumerate(urls, start=1):
        if _tracker_url_ok(url):
            out.append(url)
        elif not _foreign_scheme(url):
            raise IntakeError(f"Tracker #{position} is not a valid URL.", code="torrent_bad_tracker")
    return tuple(dict.fromkeys(out))


def _tracker_text(url: bytes) -> str:
    try:
        return url.decode("utf-8")
    except UnicodeDecodeError:
        raise IntakeError("A tracker URL in the torrent is not text.", code="torrent_bad_tracker") from None


def _foreign_scheme(url: str) -> bool:
    """A well-formed URL of a protocol we do not announce to (e.g. 'dht://…'): skipped, as before."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://[^\s/?#\[\]]+", url)
    return bool(match) and match.group(1).lower() not in _ALLOWED_TRACKER_SCHEMES


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
