"""Resume data on disk: one file per job, so whichever engine runs the job next finds it.

A file is written to a temporary name, fsynced and renamed over the old one, so a `kill -9` at any moment
leaves either the previous complete file or the new complete file, never a torn one.

Resume data holds the torrent's tracker list, and trackers of private sites carry the user's passkey in
their announce URLs, so the files are encrypted at rest with the field-encryption key (FIELD_ENCRYPTION_KEY:
the first key encrypts, every key decrypts). A file is `MAGIC` followed by one Fernet token. A file written
by an older Flotilla in plain bencode still loads, and is rewritten encrypted as it is read;
`manage.py encrypt_existing` encrypts what is left and, with `--rotate`, re-encrypts under the newest key.
Every write holds an exclusive lock on the directory's `.lock`, so the command and a running engine never
overwrite each other's newer file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# A write takes milliseconds; a temporary this old was left by a writer that was killed mid-write.
STALE_TEMPORARY_SECONDS = 3600
MAGIC = b"FLOTILLA-RESUME-FERNET-1\n"


class ResumeDecryptionError(Exception):
    """A resume file none of the configured FIELD_ENCRYPTION_KEYs opens (a removed key, or corruption)."""


class Sealed(StrEnum):
    """What `ResumeStore.reseal` found (and, unless told to only look, did) for one file."""

    ENCRYPTED = "encrypted"  # plaintext from an older version, now encrypted
    ROTATED = "rotated"  # encrypted under an older key, now under the first one
    CURRENT = "current"  # already encrypted under the first key: untouched
    UNREADABLE = "unreadable"  # no configured key opens it: untouched
    GONE = "gone"  # deleted meanwhile (the job ended)


def is_sealed(raw: bytes) -> bool:
    return raw.startswith(MAGIC)


class ResumeStore:
    def __init__(self, directory: Path, *, keys: Sequence[str] | None = None):
        self.directory = Path(directory)
        self._keys = keys

    @cached_property
    def _fernets(self) -> list[Fernet]:
        keys = self._keys if self._keys is not None else settings.FIELD_ENCRYPTION_KEY
        keys = [keys] if isinstance(keys, str | bytes) else list(keys)
        if not keys:
            raise ValueError("FIELD_ENCRYPTION_KEY is empty: resume data cannot be encrypted")
        return [Fernet(key) for key in keys]

    @property
    def _crypter(self) -> MultiFernet:
        return MultiFernet(self._fernets)

    def path(self, job_id: int) -> Path:
        return self.directory / f"{int(job_id)}.resume"

    # --- reading and writing ----------------------------------------------------------------------------

    def read(self, job_id: int) -> bytes | None:
        """The job's resume data in clear (bencode), or None. Raises ResumeDecryptionError when no key opens
        it. A plaintext file from an older version is rewritten encrypted on the way."""
        raw = self._read_raw(job_id)
        if raw is None:
            return None
        if not is_sealed(raw):
            self._replace_if_unchanged(job_id, raw, self._seal(raw))
            return raw
        return self._open(raw)

    def write(self, job_id: int, data: bytes) -> None:
        sealed = self._seal(data)
        with self._locked():
            self._write_raw(job_id, sealed)

    def delete(self, job_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(job_id).unlink()

    def job_ids(self) -> list[int]:
        if not self.directory.exists():
            return []
        return sorted(int(p.stem) for p in self.directory.glob("*.resume") if p.stem.isdigit())

    # --- key rotation -----------------------------------------------------------------------------------

    def reseal(self, job_id: int, *, rotate: bool, dry_run: bool = False) -> Sealed:
        """Encrypt a plaintext file; with `rotate`, re-encrypt one sealed under an older key with the first.
        Conditional on the file being unchanged since it was read (a running engine may write meanwhile)."""
        raw = self._read_raw(job_id)
        if raw is None:
            return Sealed.GONE
        if not is_sealed(raw):
            verdict, data = Sealed.ENCRYPTED, raw
        else:
            try:
                data = self._open(raw)
            except ResumeDecryptionError:
                return Sealed.UNREADABLE
            if not rotate or self._under_first_key(raw):
                return Sealed.CURRENT
            verdict = Sealed.ROTATED
        if not dry_run and not self._replace_if_unchanged(job_id, raw, self._seal(data)):
            return self.reseal(job_id, rotate=rotate)  # written meanwhile: look at the new content
        return verdict

    def _under_first_key(self, raw: bytes) -> bool:
        try:
            self._fernets[0].decrypt(raw[len(MAGIC):])
        except InvalidToken:
            return False
        return True

    # --- plumbing ---------------------------------------------------------------------------------------

    def _seal(self, data: bytes) -> bytes:
        return MAGIC + self._crypter.encrypt(data)

    def _open(self, raw: bytes) -> bytes:
        try:
            return self._crypter.decrypt(raw[len(MAGIC):])
        except InvalidToken:
            raise ResumeDecryptionError(
                f"resume data in {self.directory} cannot be decrypted: wrong FIELD_ENCRYPTION_KEY or corrupt file"
            ) from None

    def _read_raw(self, job_id: int) -> bytes | None:
        try:
            return self.path(job_id).read_bytes() or None
        except FileNotFoundError:
            return None

    def _replace_if_unchanged(self, job_id: int, old: bytes, new: bytes) -> bool:
        with self._locked():
            if self._read_raw(job_id) != old:
                return False
            self._write_raw(job_id, new)
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Writers (engines, the rotation command) take turns: a read-compare-write is not interleaved."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _write_raw(self, job_id: int, data: bytes) -> None:
        target = self.path(job_id)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def remove_stale_temporaries(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete temporaries a killed writer left behind; returns how many."""
        if not self.directory.exists():
            return 0
        removed, cutoff = 0, time.time() - older_than
        for tmp in self.directory.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed
