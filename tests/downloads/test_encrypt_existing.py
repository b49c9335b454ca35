"""`manage.py encrypt_existing`: plaintext left in encrypted columns is found, backed up, encrypted once."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from encrypted_model_fields import fields as emf

from config.crypto import DecryptionError, is_encrypted
from downloads.management.commands import encrypt_existing
from downloads.models import BlockedInfoHash, Job
from tests.downloads.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)

PLAIN = "magnet:?xt=urn:btih:" + "c" * 40 + "&dn=legacy"


def _raw(pk: int, column: str = "magnet") -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM downloads_job WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _set_raw(pk: int, value: str, column: str = "magnet") -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE downloads_job SET {column} = %s WHERE id = %s", [value, pk])


def run(**options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("encrypt_existing", stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def backup(transactional_db):
    """Where the SQLite backup goes (None on PostgreSQL); test backups are removed before and after."""
    if connection.vendor != "sqlite":
        yield None
        return
    db = Path(connection.settings_dict["NAME"])
    pattern = f"{db.stem}_before_encrypt*"  # with any -wal / -shm beside it
    for stale in db.parent.glob(pattern):
        stale.unlink()
    yield db.with_name(f"{db.stem}_before_encrypt.sqlite3")
    for made in db.parent.glob(pattern):
        made.unlink()


@pytest.fixture
def legacy_job(user) -> Job:
    job = JobFactory(user=user)
    _set_raw(job.pk, PLAIN)
    return job


def test_finds_every_encrypted_column():
    found = {(model, field.name) for model, field in encrypt_existing.encrypted_fields()}
    assert {(Job, "magnet"), (Job, "torrent"), (Job, "info_hash"), (BlockedInfoHash, "info_hash")} <= found


def test_plaintext_is_encrypted_after_a_backup_and_a_second_run_does_nothing(legacy_job, backup):
    with pytest.raises(DecryptionError):
        Job.objects.get(pk=legacy_job.pk)

    out, _ = run(yes=True)

    assert Job.objects.get(pk=legacy_job.pk).magnet == PLAIN
    assert is_encrypted(_raw(legacy_job.pk))
    assert "downloads.Job.magnet: 1 encrypted, 0 skipped (already encrypted)" in out
    assert "downloads.Job.info_hash: 0 encrypted, 1 skipped (already encrypted)" in out
    assert "Total: 1 processed" in out
    if backup is None:
        assert "pg_dump --format=custom" in out
    else:
        assert f"Backed up the database to {backup}" in out
        copy = sqlite3.connect(backup)
        try:  # the copy was taken before the write
            row = copy.execute("SELECT magnet FROM downloads_job WHERE id = ?", [legacy_job.pk]).fetchone()
        finally:
            copy.close()
        assert row == (PLAIN,)

    again, _ = run(yes=True)
    assert "Total: 0 processed" in again
    assert "Backed up" not in again and "pg_dump" not in again  # nothing to write, nothing to back up


def test_dry_run_counts_and_writes_nothing(legacy_job, backup):
    out, _ = run(dry_run=True)
    assert "downloads.Job.magnet: 1 to encrypt" in out
    assert "Total: 1 to process" in out and "Dry run: nothing was written." in out
    assert _raw(legacy_job.pk) == PLAIN
    if backup is not None:
        assert not backup.exists()


def test_postgres_needs_yes_and_sqlite_backs_up_by_itself(legacy_job, backup):
    if connection.vendor == "postgresql":
        with pytest.raises(CommandError, match="--yes"):
            run()
        assert _raw(legacy_job.pk) == PLAIN
    else:
        run()
        assert backup.exists()
        assert Job.objects.get(pk=legacy_job.pk).magnet == PLAIN


def test_empty_string_left_by_a_migration_is_encrypted(user, backup):
    job = JobFactory(user=user)
    _set_raw(job.pk, "", column="torrent")
    with pytest.raises(DecryptionError):
        Job.objects.get(pk=job.pk)
    run(yes=True)
    assert Job.objects.get(pk=job.pk).torrent == ""


def test_value_under_an_unknown_key_is_left_alone(user, backup):
    job = JobFactory(user=user)
    foreign = Fernet(Fernet.generate_key()).encrypt(b"secret").decode()
    _set_raw(job.pk, foreign)
    out, err = run(yes=True)
    assert _raw(job.pk) == foreign  # wrapping it as "plaintext" would bury the real secret
    assert "downloads.Job.magnet: 1 value(s) are encrypted with a key not in FIELD_ENCRYPTION_KEY" in err
    assert "Total: 0 processed" in out


def test_rotate_reencrypts_with_the_newest_key(user, backup, settings, monkeypatch):
    job = JobFactory(user=user)  # encrypted with the current key, which is about to become the old one
    old_key = settings.FIELD_ENCRYPTION_KEY[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = [new_key, old_key]
    monkeypatch.setattr(emf, "CRYPTER", emf.get_crypter())

    out, _ = run(yes=True)  # without --rotate, old-key values are fine as they are
    assert "Total: 0 processed" in out

    out, _ = run(yes=True, rotate=True)
    assert "downloads.Job.magnet: 0 encrypted, 1 re-encrypted with the newest key" in out
    assert Fernet(new_key).decrypt(_raw(job.pk).encode()).decode() == job.magnet
    assert Job.objects.get(pk=job.pk).magnet == job.magnet

    again, _ = run(yes=True, rotate=True)
    assert "Total: 0 processed" in again


def test_a_value_changed_meanwhile_is_not_overwritten(legacy_job):
    field = Job._meta.get_field("magnet")
    written = encrypt_existing._write(Job, field, connection, legacy_job.pk, "something else", "new")
    assert written is False
    assert _raw(legacy_job.pk) == PLAIN
