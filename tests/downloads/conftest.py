"""Fixtures shared by the spine's in-process tests."""

from __future__ import annotations

import pytest

from downloads import backends
from tests.fakes.loopback_backend import KIND, LoopbackBackend


@pytest.fixture
def loopback(tmp_path, settings):
    """A registered loopback backend with its own state; the registry is restored afterwards."""
    settings.PROGRESS_EVENT_INTERVAL = 0  # one progress event per sync, so tests can count them
    previous = backends.get_backend(KIND)
    backend = backends.register(LoopbackBackend(state_dir=tmp_path / "loopback"))
    yield backend
    backends.unregister(KIND)
    if previous is not None:
        backends.register(previous)
