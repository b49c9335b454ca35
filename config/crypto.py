"""Encrypted columns that refuse to read what they cannot decrypt, and keyed hashes for lookups.

django-encrypted-model-fields returns the raw column when decryption fails. That hides a wrong key or a
corrupt value and would hand ciphertext (or old plaintext) to the code as if it were the secret. Here a
value read from the database must decrypt; plaintext is tolerated only inside `allow_plaintext()`, which
the `encrypt_existing` management command uses to find and encrypt legacy rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac

import cryptography.fernet
from django.conf import settings
from encrypted_model_fields import fields as emf

_allow_plaintext = contextvars.ContextVar("allow_plaintext", default=False)


class DecryptionError(Exception):
    """An encrypted column holds a value the configured FIELD_ENCRYPTION_KEY list cannot decrypt."""


@contextlib.contextmanager
def allow_plaintext():
    token = _allow_plaintext.set(True)
    try:
        yield
    finally:
        _allow_plaintext.reset(token)


def is_encrypted(raw: str) -> bool:
    try:
        emf.decrypt_str(raw)
    except cryptography.fernet.InvalidToken:
        return False
    return True


class StrictDecryptMixin:
    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode()
        try:
            plain = emf.decrypt_str(value)
        except cryptography.fernet.InvalidToken:
            if _allow_plaintext.get():
                plain = value
            else:
                raise DecryptionError(
                    f"{self.model.__name__}.{self.name} could not be decrypted: wrong FIELD_ENCRYPTION_KEY, "
                    "corrupt value, or plaintext left over (run `manage.py encrypt_existing`)."
                ) from None
        return super(emf.EncryptedMixin, self).to_python(plain)


class EncryptedTextField(StrictDecryptMixin, emf.EncryptedTextField):
    pass


class EncryptedCharField(StrictDecryptMixin, emf.EncryptedCharField):
    pass


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 of a normalised value, so an encrypted column can still be found by equality."""
    key = settings.LOOKUP_HASH_KEY.encode()
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()
