"""First-run key generation: a local install works with no configuration, and says loudly what to keep."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def load_or_create_key(path: Path, name: str, *, fernet: bool = False, losing_it: str = "") -> str:
    """Return the key stored at `path`, creating it (mode 0600) on first use with a loud warning.

    `losing_it` says what breaks without the file, for the warning."""
    if path.exists():
        return path.read_text().strip()
    if fernet:
        from cryptography.fernet import Fernet

        key = Fernet.generate_key().decode()
    else:
        key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process (web, worker, engine start together) wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    banner = "!" * 78
    print(
        f"{banner}\n  {name} was not set: generated one into {path}\n"
        f"  BACK THIS FILE UP. {losing_it}\n"
        f"  Set {name} in the environment for production.\n{banner}",
        file=sys.stderr,
    )
    return key
