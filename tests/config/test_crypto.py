import pytest
from cryptography.fernet import Fernet
from django.db import connection
from encrypted_model_fields import fields as emf

from config.crypto import DecryptionError, allow_plaintext, is_encrypted, keyed_hash
from downloads.models import Job
from tests.downloads.factories import JobFactory


@pytest.mark.django_db
def test_secret_columns_are_ciphertext_in_the_database():
    job = JobFactory(magnet="magnet:?xt=urn:btih:" + "a" * 40)
    with connection.cursor() as cursor:
        cursor.execute("SELECT magnet, info_hash FROM downloads_job WHERE id = %s", [job.pk])
        magnet_raw, hash_raw = cursor.fetchone()
    assert "btih" not in magnet_raw and is_encrypted(magnet_raw)
    assert job.info_hash not in hash_raw and is_encrypted(hash_raw)
    assert Job.objects.get(pk=job.pk).magnet == job.magnet


@pytest.mark.django_db
def test_plaintext_or_foreign_ciphertext_raises_instead_of_leaking():
    job = JobFactory()
    foreign = Fernet(Fernet.generate_key()).encrypt(b"secret").decode()
    for raw in ("plain magnet", foreign):
        with connection.cursor() as cursor:
            cursor.execute("UPDATE downloads_job SET magnet = %s WHERE id = %s", [raw, job.pk])
        with pytest.raises(DecryptionError):
            Job.objects.get(pk=job.pk)
    with allow_plaintext():
        assert Job.objects.get(pk=job.pk).magnet == foreign  # only the migration command may see raw values


@pytest.mark.django_db
def test_key_rotation_reads_values_written_with_an_older_key(monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    from cryptography.fernet import MultiFernet

    monkeypatch.setattr(emf, "CRYPTER", MultiFernet([Fernet(old)]))
    job = JobFactory(magnet="magnet:?xt=urn:btih:" + "c" * 40)
    monkeypatch.setattr(emf, "CRYPTER", MultiFernet([Fernet(new), Fernet(old)]))
    assert Job.objects.get(pk=job.pk).magnet.endswith("c" * 40)
    monkeypatch.setattr(emf, "CRYPTER", MultiFernet([Fernet(new)]))
    with pytest.raises(DecryptionError):
        Job.objects.get(pk=job.pk)


def test_keyed_hash_is_stable_normalised_and_keyed(settings):
    assert keyed_hash("ABC ") == keyed_hash("abc")
    first = keyed_hash("abc")
    settings.LOOKUP_HASH_KEY = "another key"
    assert keyed_hash("abc") != first
