"""Encrypt secret columns that still hold plaintext; with --rotate, re-encrypt under the newest key.

Encrypted columns refuse to load a value they cannot decrypt (config.crypto). Rows written before a
column was encrypted, or imported from elsewhere, hold plaintext and would make every read fail; this
command finds them and encrypts them in place. It reads and writes the raw column with SQL (the field's
`from_db_value` would otherwise decrypt, or refuse, before we could look), and each write is conditional
on the column still holding what was read, so a concurrent writer is never overwritten.

Before the first write it backs the database up (SQLite: an online copy beside the file) or, on
PostgreSQL, prints the `pg_dump` command to run and needs `--yes`. Running it again processes nothing.

The engine's resume files (ENGINE_STATE_DIR/resume, or `--resume-dir`) are secrets at rest too (tracker
passkeys): plaintext ones left by an older version are encrypted and, with --rotate, ones under an older
key re-encrypted with the first. Each rewrite is atomic and conditional on the file being unchanged, under
the lock engines take to write, so it is safe while engines run. Run it on every host that keeps resume files.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cryptography.fernet
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from encrypted_model_fields import fields as emf

from config.crypto import StrictDecryptMixin, is_encrypted
from downloads.engine.resume import ResumeStore, Sealed

CHUNK = 500

ENCRYPT, ROTATE, UNREADABLE, CURRENT = "encrypt", "rotate", "unreadable", "current"


@dataclass
class FieldTally:
    label: str
    encrypt: int = 0  # plaintext found (or encrypted, when writing)
    rotate: int = 0  # encrypted under an older key (only looked for with --rotate)
    current: int = 0  # already encrypted: skipped
    unreadable: int = 0  # a Fernet token none of the configured keys opens: never touched
    changed_meanwhile: int = 0  # the row changed between read and write: left to the other writer

    @property
    def processed(self) -> int:
        return self.encrypt + self.rotate

    def add(self, verdict: str) -> None:
        setattr(self, verdict, getattr(self, verdict) + 1)


def encrypted_fields() -> list[tuple[type[Model], Field]]:
    """Every strict encrypted column of every installed model, once per table column."""
    found, seen = [], set()
    for model in apps.get_models():
        opts = model._meta
        if opts.proxy or not opts.managed:
            continue
        for field in opts.local_concrete_fields:
            key = (opts.db_table, field.column)
            if isinstance(field, StrictDecryptMixin) and key not in seen:
                seen.add(key)
                found.append((model, field))
    return found


def _looks_like_fernet(raw: str) -> bool:
    """A Fernet token (version byte 0x80) that our keys cannot open: a wrong or missing key, not plaintext."""
    try:
        data = base64.urlsafe_b64decode(raw.encode())
    except (binascii.Error, ValueError):
        return False
    return len(data) >= 73 and data[0] == 0x80


class Command(BaseCommand):
    help = "Encrypt plaintext left in encrypted columns (and, with --rotate, re-encrypt under the newest key)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Only count; write nothing.")
        parser.add_argument(
            "--rotate", action="store_true",
            help="Also re-encrypt values encrypted under an older key with the first FIELD_ENCRYPTION_KEY.",
        )
        parser.add_argument(
            "--yes", "--no-input", "--noinput", action="store_true", dest="yes",
            help="Do not stop for a backup confirmation (PostgreSQL: take the pg_dump first).",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--resume-dir", type=Path, default=None,
                            help="The engine's resume files (default: ENGINE_STATE_DIR/resume).")

    def handle(self, *args, dry_run: bool, rotate: bool, yes: bool, database: str, resume_dir: Path | None,
               **options) -> None:
        connection = connections[database]
        fields = encrypted_fields()
        primary = _primary_fernet() if rotate else None
        scan = [self._tally(model, field, connection, primary) for model, field in fields]
        if dry_run or not sum(t.processed for t in scan):
            self._print(scan, would=dry_run)
        else:
            self._backup(connection, yes=yes)
            done = [self._apply(model, field, connection, primary) for model, field in fields]
            self._print(done, would=False)
        # Resume files need no backup: a rewrite holds the same data and replaces the file atomically.
        self._reseal_resume_files(resume_dir or Path(settings.ENGINE_STATE_DIR) / "resume", rotate=rotate,
                                  dry_run=dry_run)
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")

    def _reseal_resume_files(self, directory: Path, *, rotate: bool, dry_run: bool) -> None:
        store = ResumeStore(directory)
        counts = dict.fromkeys(Sealed, 0)
        for job_id in store.job_ids():
            counts[store.reseal(job_id, rotate=rotate, dry_run=dry_run)] += 1
        would = "to encrypt" if dry_run else "encrypted"
        line = f"Resume files in {directory}: {counts[Sealed.ENCRYPTED]} {would}"
        if counts[Sealed.ROTATED]:
            line += f", {counts[Sealed.ROTATED]} {'to re-encrypt' if dry_run else 're-encrypted'} with the newest key"
        self.stdout.write(line + f", {counts[Sealed.CURRENT]} skipped (already encrypted).")
        if counts[Sealed.UNREADABLE]:
            self.stderr.write(
                f"Resume files in {directory}: {counts[Sealed.UNREADABLE]} file(s) are encrypted with a key not in "
                "FIELD_ENCRYPTION_KEY and were left untouched (the engine starts those jobs from their torrent)."
            )

    # --- reading and classifying ----------------------------------------------------------------

    def _tally(self, model, field, connection, primary) -> FieldTally:
        tally = FieldTally(_label(model, field))
        for _pk, raw in _raw_rows(model, field, connection):
            tally.add(_verdict(raw, primary))
        return tally

    def _apply(self, model, field, connection, primary) -> FieldTally:
        tally = FieldTally(_label(model, field))
        for rows in _raw_chunks(model, field, connection):
            with transaction.atomic(using=connection.alias):
                for pk, raw in rows:
                    verdict = _verdict(raw, primary)
                    if verdict in (ENCRYPT, ROTATE):
                        new = (
                            field.get_db_prep_save(raw, connection)
                            if verdict == ENCRYPT
                            else emf.CRYPTER.rotate(raw.encode()).decode()
                        )
                        if not _write(model, field, connection, pk, raw, new):
                            verdict = "changed_meanwhile"
                    tally.add(verdict)
        return tally

    # --- backup -----------------------------------------------------------------------------------

    def _backup(self, connection: BaseDatabaseWrapper, *, yes: bool) -> None:
        if connection.vendor == "sqlite":
            self._backup_sqlite(connection)
        elif connection.vendor == "postgresql":
            self.stdout.write(
                "Take a backup before encrypting, for example:\n  " + _pg_dump_command(connection.settings_dict)
            )
            if not yes:
                raise CommandError("Nothing was written. Take the backup, then run again with --yes.")
        elif not yes:
            raise CommandError(f"Back up the {connection.vendor} database, then run again with --yes.")

    def _backup_sqlite(self, connection: BaseDatabaseWrapper) -> None:
        name = str(connection.settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            self.stdout.write("In-memory SQLite database: there is no file to back up.")
            return
        target = _backup_path(Path(name))
        connection.ensure_connection()
        copy = sqlite3.connect(target)
        try:
            connection.connection.backup(copy)  # online backup API: a consistent copy, even under WAL
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            copy.close()
        self.stdout.write(f"Backed up the database to {target}")

    # --- output -----------------------------------------------------------------------------------

    def _print(self, tallies: list[FieldTally], *, would: bool) -> None:
        verb = "to encrypt" if would else "encrypted"
        for t in tallies:
            line = f"{t.label}: {t.encrypt} {verb}"
            if t.rotate:
                line += f", {t.rotate} {'to re-encrypt' if would else 're-encrypted'} with the newest key"
            line += f", {t.current} skipped (already encrypted)"
            if t.changed_meanwhile:
                line += f", {t.changed_meanwhile} changed meanwhile (left alone)"
            self.stdout.write(line)
            if t.unreadable:
                self.stderr.write(
                    f"{t.label}: {t.unreadable} value(s) are encrypted with a key not in FIELD_ENCRYPTION_KEY "
                    "and were left untouched. Add the old key to the list (after the current one)."
                )
        processed = sum(t.processed for t in tallies)
        skipped = sum(t.current for t in tallies)
        label = "to process" if would else "processed"
        self.stdout.write(f"Total: {processed} {label}, {skipped} skipped (already encrypted).")


def _label(model: type[Model], field: Field) -> str:
    return f"{model._meta.label}.{field.name}"


def _verdict(raw: str, primary: cryptography.fernet.Fernet | None) -> str:
    if not is_encrypted(raw):
        return UNREADABLE if _looks_like_fernet(raw) else ENCRYPT
    if primary is None:
        return CURRENT
    try:
        primary.decrypt(raw.encode())
    except cryptography.fernet.InvalidToken:
        return ROTATE
    return CURRENT


def _primary_fernet() -> cryptography.fernet.Fernet:
    """The key new values are encrypted with: the first FIELD_ENCRYPTION_KEY (MultiFernet's order)."""
    keys = settings.FIELD_ENCRYPTION_KEY
    first = keys[0] if isinstance(keys, list | tuple) else keys
    return cryptography.fernet.Fernet(first)


def _raw_chunks(model, field, connection, chunk: int = CHUNK) -> Iterator[list[tuple[object, str]]]:
    """(pk, raw column) of non-NULL values in pk order, CHUNK rows at a time (keyset, so no OFFSET scans)."""
    qn = connection.ops.quote_name
    table, pk_col, col = qn(model._meta.db_table), qn(model._meta.pk.column), qn(field.column)
    # Identifiers are quoted names from model metadata; only values are parameters.
    first = f"SELECT {pk_col}, {col} FROM {table} WHERE {col} IS NOT NULL ORDER BY {pk_col} LIMIT %s"  # noqa: S608
    after = (
        f"SELECT {pk_col}, {col} FROM {table} WHERE {col} IS NOT NULL AND {pk_col} > %s "  # noqa: S608
        f"ORDER BY {pk_col} LIMIT %s"
    )
    last = None
    while True:
        with connection.cursor() as cursor:
            cursor.execute(*((first, [chunk]) if last is None else (after, [last, chunk])))
            rows = [(pk, _text(raw)) for pk, raw in cursor.fetchall()]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _raw_rows(model, field, connection) -> Iterator[tuple[object, str]]:
    for rows in _raw_chunks(model, field, connection):
        yield from rows


def _text(raw: object) -> str:
    return bytes(raw).decode() if isinstance(raw, bytes | memoryview) else str(raw)


def _write(model, field, connection, pk, old: str, new: str) -> bool:
    """Replace the value only if it is still `old` (another process may have just written it)."""
    qn = connection.ops.quote_name
    sql = (
        f"UPDATE {qn(model._meta.db_table)} SET {qn(field.column)} = %s "  # noqa: S608
        f"WHERE {qn(model._meta.pk.column)} = %s AND {qn(field.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [new, pk, old])
        return cursor.rowcount == 1


def _backup_path(db_file: Path) -> Path:
    """<name>_before_encrypt.sqlite3 beside the database; never overwrite an earlier backup."""
    target = db_file.with_name(f"{db_file.stem}_before_encrypt.sqlite3")
    if target.exists():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = db_file.with_name(f"{db_file.stem}_before_encrypt_{stamp}.sqlite3")
    return target


def _pg_dump_command(db: dict) -> str:
    parts = ["pg_dump", "--format=custom", f"--file={db['NAME']}_before_encrypt.dump"]
    if db.get("HOST"):
        parts.append(f"--host={db['HOST']}")
    if db.get("PORT"):
        parts.append(f"--port={db['PORT']}")
    if db.get("USER"):
        parts.append(f"--username={db['USER']}")
    parts.append(str(db["NAME"]))
    return " ".join(parts)
