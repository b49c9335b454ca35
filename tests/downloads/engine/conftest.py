"""An in-process engine (real libtorrent session, real swarm on 127.0.0.1) driven tick by tick."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from billing.services import current_plan
from downloads.swarm import Swarm

# stop_tracker_timeout: the session's destructor holds the GIL while it waits for its "stopped" announces,
# which the tracker thread of this same process then cannot answer; 1 s instead of 5 s per engine.
LOOPBACK_LIBTORRENT = {"allow_multiple_connections_per_ip": True, "min_reconnect_time": 1, "stop_tracker_timeout": 1}


@pytest.fixture
def engine_settings(settings):
    """Loopback-only session: no DHT/LSD/UPnP/NAT-PMP, an ephemeral port, quick polling."""
    settings.ENGINE_LISTEN_INTERFACES = "127.0.0.1:0"
    settings.ENGINE_DHT = settings.ENGINE_LSD = settings.ENGINE_UPNP = settings.ENGINE_NATPMP = False
    settings.ENGINE_LIBTORRENT_SETTINGS = dict(LOOPBACK_LIBTORRENT)
    settings.ENGINE_POLL_INTERVAL = 0.1
    settings.ENGINE_RESUME_SAVE_INTERVAL = 0.5
    settings.PROGRESS_EVENT_INTERVAL = 0.2
    return settings


@pytest.fixture
def make_engine(engine_settings, tmp_path):
    from downloads.engine.runner import Engine

    started = []

    def make(name: str = "engine-test", state_dir=None) -> Engine:
        engine = Engine(name, state_dir=state_dir or tmp_path / "engine")
        engine.start()
        started.append(engine)
        return engine

    yield make
    for engine in started:
        engine.shutdown()


@pytest.fixture
def engine(make_engine):
    return make_engine()


@pytest.fixture
def local_swarm(tmp_path):
    with Swarm(tmp_path / "swarm") as swarm:
        yield swarm


@pytest.fixture
def no_seeding(user):
    """The user's plan asks for no seeding, so a job completes as soon as it is downloaded."""
    plan = current_plan(user)
    plan.seed_ratio_limit, plan.seed_time_limit_minutes = 0, 0
    plan.save()
    return plan


def run_until(engine, done: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Tick the engine until `done()` holds (a timeout is a failure, not a measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine.tick(0.05)
        if done():
            return
    raise AssertionError(f"engine did not reach: {what} within {timeout}s")
