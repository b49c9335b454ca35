"""Resume files are encrypted at rest with FIELD_ENCRYPTION_KEY, migrated from plaintext on read, rotated by
`encrypt_existing --rotate`, and written atomically."""

from __future__ import annotations

import base64
import io
import os
import urllib.parse

import libtorrent as lt
import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from downloads.engine.resume import MAGIC, ResumeDecryptionError, ResumeStore, Sealed
from downloads.models import Status
from tests.downloads.factories import JobFactory

PASSKEY = "5f0e1d2c3b4a59687766554433221100"
ANNOUNCE = f"http://tracker.example/announce?passkey={PASSKEY}"


def secret_forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, urllib.parse.quote(secret, safe="").encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw),
            base64.b64encode(raw).rstrip(b"=")]


def resume_bytes_with_passkey() -> bytes:
    """Real libtorrent resume data (bencode) of a magnet whose tracker carries a passkey."""
    params = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{'ab' * 20}&tr={urllib.parse.quote(ANNOUNCE, safe='')}")
    params.save_path = "/tmp"
    return lt.write_resume_data_buf(params)


@pytest.fixture
def keys():
    return [Fernet.generate_key().decode(), Fernet.generate_key().decode()]


def test_resume_data_is_encrypted_on_disk_and_reads_back(tmp_path, keys):
    data = resume_bytes_with_passkey()
    assert PASSKEY.encode() in data, "the premise: libtorrent keeps the announce URL in resume data"
    store = ResumeStore(tmp_path, keys=keys)
    store.write(3, data)
    on_disk = store.path(3).read_bytes()
    assert on_disk.startswith(MAGIC)
    assert not any(form in on_disk for form in secret_forms(PASSKEY))
    assert store.read(3) == data
    assert lt.read_resume_data(store.read(3)).trackers == [ANNOUNCE]


def test_a_plaintext_file_from_an_older_version_loads_and_is_rewritten_encrypted(tmp_path, keys):
    data = resume_bytes_with_passkey()
    store = ResumeStore(tmp_path / "resume", keys=keys)
    store.directory.mkdir()
    store.path(9).write_bytes(data)  # what Flotilla wrote before resume files were encrypted
    assert store.read(9) == data
    assert store.path(9).read_bytes().startswith(MAGIC) and PASSKEY.encode() not in store.path(9).read_bytes()
    assert store.read(9) == data
    assert sorted(p.name for p in store.directory.iterdir()) == [".lock", "9.resume"], "no temporary left behind"


def test_only_the_configured_keys_open_a_file_and_rotation_moves_it_to_the_first(tmp_path, keys):
    new, old = keys
    ResumeStore(tmp_path, keys=[old]).write(1, b"d4:spam4:eggse")
    with pytest.raises(ResumeDecryptionError):
        ResumeStore(tmp_path, keys=[new]).read(1)
    rotating = ResumeStore(tmp_path, keys=[new, old])
    assert rotating.read(1) == b"d4:spam4:eggse", "every key in the list decrypts"
    assert rotating.reseal(1, rotate=False) is Sealed.CURRENT, "without --rotate an old-key file is fine"
    assert rotating.reseal(1, rotate=True, dry_run=True) is Sealed.ROTATED
    assert ResumeStore(tmp_path, keys=[new]).path(1).read_bytes() == ResumeStore(tmp_path).path(1).read_bytes()
    with pytest.raises(ResumeDecryptionError):
        ResumeStore(tmp_path, keys=[new]).read(1)  # the dry run wrote nothing
    assert rotating.reseal(1, rotate=True) is Sealed.ROTATED
    assert ResumeStore(tmp_path, keys=[new]).read(1) == b"d4:spam4:eggse", "the old key can now be dropped"
    assert rotating.reseal(1, rotate=True) is Sealed.CURRENT
    assert ResumeStore(tmp_path, keys=[Fernet.generate_key().decode()]).reseal(1, rotate=True) is Sealed.UNREADABLE
    assert rotating.reseal(2, rotate=True) is Sealed.GONE


def test_a_writer_killed_mid_write_leaves_the_previous_file_whole(tmp_path, keys, monkeypatch):
    store = ResumeStore(tmp_path, keys=keys)
    store.write(4, b"d5:first1:ae")

    def killed(fd):
        raise KeyboardInterrupt  # stands for a SIGKILL between writing the temporary and renaming it

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write(4, b"d6:second1:be")
    monkeypatch.undo()
    assert store.read(4) == b"d5:first1:ae"
    assert len(list(tmp_path.glob(".4.resume.*.tmp"))) == 1, "only the temporary is torn"


def test_rotation_does_not_overwrite_a_file_written_meanwhile(tmp_path, keys):
    new, old = keys
    ResumeStore(tmp_path, keys=[old]).write(5, b"d3:old1:ae")
    store = ResumeStore(tmp_path, keys=[new, old])
    raw = store.path(5).read_bytes()
    store.write(5, b"d3:new1:be")  # the engine saved newer resume data between the read and the rewrite
    assert store._replace_if_unchanged(5, raw, b"stale") is False
    assert store.read(5) == b"d3:new1:be"


@pytest.mark.django_db
def test_encrypt_existing_encrypts_old_files_and_rotates_keys(tmp_path, settings, keys):
    new, old = keys
    settings.FIELD_ENCRYPTION_KEY = [old]
    directory = tmp_path / "resume"
    ResumeStore(directory).write(1, b"d3:one1:ae")
    directory.joinpath("2.resume").write_bytes(b"d3:two1:be")  # plaintext from an older version
    settings.FIELD_ENCRYPTION_KEY = [new, old]

    def run(**options) -> str:
        out = io.StringIO()
        call_command("encrypt_existing", resume_dir=directory, yes=True, stdout=out, stderr=io.StringIO(),
                     **options)
        return out.getvalue()

    assert f"Resume files in {directory}: 1 to encrypt, 1 to re-encrypt with the newest key, 0 skipped" in run(
        dry_run=True, rotate=True)
    assert not directory.joinpath("2.resume").read_bytes().startswith(MAGIC)
    assert f"Resume files in {directory}: 1 encrypted, 1 skipped (already encrypted)." in run()
    assert f"Resume files in {directory}: 0 encrypted, 1 re-encrypted with the newest key, 1 skipped" in run(
        rotate=True)
    only_new = ResumeStore(directory, keys=[new])
    assert only_new.read(1) == b"d3:one1:ae" and only_new.read(2) == b"d3:two1:be"
    assert f"Resume files in {directory}: 0 encrypted, 2 skipped (already encrypted)." in run(rotate=True)


@pytest.mark.django_db
def test_the_engine_starts_from_the_magnet_when_no_key_opens_the_resume_file(engine, user, caplog):
    job = JobFactory(user=user, status=Status.STARTING, magnet=f"magnet:?xt=urn:btih:{'cd' * 20}")
    ResumeStore(engine.resume.directory, keys=[Fernet.generate_key().decode()]).write(job.pk, b"d1:ai1ee")
    params, from_resume = engine._add_params(job)
    assert from_resume is False and str(params.info_hashes.v1) == "cd" * 20
    assert "resume data cannot be decrypted" in caplog.text
