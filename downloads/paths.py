"""Keeping paths inside their root: for torrent names, archives, uploads and file delivery alike."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from config.errors import DomainError


class UnsafePath(DomainError):
    code = "unsafe_path"


def clean_relative(relative: str) -> PurePosixPath:
    """A relative POSIX path with no `..`, no absolute part, no NUL and no empty components."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePath(f"Path {relative[:80]!r} is not allowed.")
    path = PurePosixPath(relative)
    if path.is_absolute() or any(part in ("..", ".", "") for part in relative.split("/")):
        raise UnsafePath(f"Path {relative[:80]!r} is not allowed.")
    return path


def safe_join(root: Path, relative: str) -> Path:
    """`root / relative`, refused if it would land outside `root` (also through symlinks on disk)."""
    candidate = root / clean_relative(relative)
    resolved_root = root.resolve()
    resolved = candidate.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafePath(f"Path {relative[:80]!r} leaves its folder.")
    return candidate
