"""Bringing finished Seedr downloads home: streamed, resumable HTTP transfers, safe zip extraction, and the
atomic move into the job's folder. Files only, no database: seedr/backend.py drives these.

Memory stays flat whatever the size: bodies are written chunk by chunk as they arrive (bench/seedr_transfer.py
measures it on a 1 GB file).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import httpx

from downloads.paths import UnsafePath, clean_relative, safe_join

CHUNK = 1024 * 1024
IN_TASK_ATTEMPTS = 4  # a cut connection is resumed with Range this many times before the task gives up
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class TransferError(Exception):
    """The transfer could not finish now; a later attempt resumes it (transient)."""


class UnsafeArchive(Exception):
    """The archive tries to leave its folder, holds links, or expands beyond what Seedr listed (permanent)."""


def http_client() -> httpx.Client:
    # No read timeout on the body is wanted (slow CDNs), but a stalled connection must end: 60 s per read.
    return httpx.Client(timeout=httpx.Timeout(30.0, read=60.0), follow_redirects=True)


def stream_file(http: httpx.Client, url: str, dest: Path, size: int | None,
                on_position: Callable[[int], None], *, attempts: int = IN_TASK_ATTEMPTS) -> int:
    """Download `url` into `dest`, resuming from what `dest` already holds with a Range request.

    `size` (when known) is verified at the end; `on_position(bytes_in_file)` is called as data arrives and
    may raise to abort. Returns the final size. Raises TransferError when it cannot finish now.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error = "no attempt made"
    for _ in range(attempts):
        have = dest.stat().st_size if dest.exists() else 0
        if size is not None and have > size:
            dest.unlink()
            have = 0
        if size is not None and have == size:
            return have
        try:
            have = _one_request(http, url, dest, have, size, on_position)
        except httpx.TransportError as exc:  # cut mid-body: the next round resumes from what was written
            last_error = f"connection lost ({type(exc).__name__})"
            continue
        if size is None or have == size:
            return have
        last_error = f"got {have} of {size} bytes"
    raise TransferError(f"The transfer from Seedr did not finish: {last_error}.")


def _one_request(http: httpx.Client, url: str, dest: Path, have: int, size: int | None,
                 on_position: Callable[[int], None]) -> int:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with http.stream("GET", url, headers=headers) as response:
        status = response.status_code
        if status == 416 and have:
            dest.unlink(missing_ok=True)  # our partial file does not match theirs: start over
            return 0
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
            if not match or int(match.group(1)) != have:
                raise TransferError("Seedr answered a different range than asked for.")
        elif status == 200:
            have = 0  # the server ignored Range (Seedr's zips do): whole body from the start
        elif status in (403, 404, 410):
            raise TransferError(f"The Seedr link stopped working (HTTP {status}); a fresh one is fetched next time.")
        else:
            raise TransferError(f"Seedr's file server answered HTTP {status}.")
        with dest.open("ab" if have else "wb") as out:
            # Chunks as they arrive (not re-buffered to a fixed size): when the connection drops, everything
            # received so far is on disk and the resume starts exactly there.
            for chunk in response.iter_bytes():
                out.write(chunk)
                have += len(chunk)
                on_position(have)
    return have


# --- archives ----------------------------------------------------------------------------------------


def safe_extract(archive: Path, target: Path, *, max_bytes: int, max_files: int,
                 strip: str = "") -> list[tuple[str, int]]:
    """Extract a zip into `target`, refusing the whole archive if any entry is unsafe.

    Refused: names that leave the folder (`../`, absolute, backslashes, NUL), symlinks, more than
    `max_files` entries, and declared or actual sizes beyond `max_bytes` (bounded expansion). A leading
    folder `strip` (Seedr zips the torrent's folder) is removed from the paths. Returns (path, size).
    """
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise UnsafeArchive(f"The archive holds {len(infos)} entries; at most {max_files} are allowed.")
        planned = []
        for info in infos:
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchive(f"The archive holds a symbolic link ({info.filename[:80]!r}).")
            try:
                relative = clean_relative(info.filename.rstrip("/") if info.is_dir() else info.filename)
            except UnsafePath as exc:
                raise UnsafeArchive(f"The archive holds an unsafe name: {exc.detail}") from None
            if not info.is_dir():
                planned.append((info, _strip(relative, strip)))
        declared = sum(info.file_size for info, _ in planned)
        if declared > max_bytes:
            raise UnsafeArchive(f"The archive would expand to {declared} bytes, more than the {max_bytes} listed.")
        written_total, out = 0, []
        for info, relative in planned:
            dest = safe_join(target, str(relative))
            dest.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, dest.open("wb") as sink:
                while chunk := src.read(CHUNK):
                    written += len(chunk)
                    written_total += len(chunk)
                    if written > info.file_size or written_total > max_bytes:
                        raise UnsafeArchive("The archive expands beyond its declared sizes.")
                    sink.write(chunk)
            out.append((str(relative), written))
    return out


def _strip(relative: PurePosixPath, prefix: str) -> PurePosixPath:
    parts = relative.parts
    if prefix and len(parts) > 1 and parts[0] == prefix:
        return PurePosixPath(*parts[1:])
    return relative


# --- moving into place -----------------------------------------------------------------------------------


def move_into_place(staging: Path, target: Path) -> None:
    """Move the finished tree into the job's folder: one rename when possible (atomic: the folder appears
    complete or not at all); across filesystems a copy beside the target, then that rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        _merge(staging, target)
        return
    try:
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        incoming = target.parent / f".{target.name}.incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.copytree(staging, incoming)
        os.rename(incoming, target)
        shutil.rmtree(staging, ignore_errors=True)


def _merge(staging: Path, target: Path) -> None:
    """A folder is already there (a retried job): replace file by file, each replace atomic."""
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            dest = target / path.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(path, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.copy2(path, dest)
    shutil.rmtree(staging, ignore_errors=True)
