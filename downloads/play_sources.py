"""Where a "Play without downloading" job may come from besides a magnet or a .torrent: apps register a maker
in their AppConfig.ready() (indexers registers "result", a stored search result), as backends register
themselves. streaming/ephemeral.py asks here, so it never imports the app that owns the source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from downloads.models import Job

# kind → maker(user, reference) returning an ephemeral job on the built-in engine (raising a DomainError or
# Http404 on refusal, having created nothing)
_makers: dict[str, Callable[[Any, Any], Job]] = {}


def register(kind: str, maker: Callable[[Any, Any], Job]) -> None:
    _makers[kind] = maker


def maker(kind: str) -> Callable[[Any, Any], Job] | None:
    return _makers.get(kind)
