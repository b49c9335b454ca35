"""django-q2 entry points (thin)."""

from __future__ import annotations

from . import services


def sweep() -> dict[str, int]:
    return services.sweep()
