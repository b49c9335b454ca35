"""The project's own modules, for the tests that read the source (import graph, enqueue bypasses)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The top-level packages the product brief fixes, plus config (the base layer) and the spine app.
APPS = ("config", "accounts", "billing", "downloads", "seedr", "servers", "indexers", "streaming", "audiobooks")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the apps, migrations excluded (frozen history, loaded only by the migration runner)."""
    found: dict[str, Path] = {}
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")) if (root / app).is_dir() else ():
            if "migrations" not in path.relative_to(root).parts:
                found[module_name(path, root)] = path
    return found
