"""When seeding ends: the plan's ratio and time limits, and SEED_IDLE_MINUTES without demand."""

from __future__ import annotations

import datetime as dt

import pytest

from billing.models import Plan
from billing.services import assign_plan
from downloads import services
from downloads.engine.config import idle_seconds, seeding_done
from downloads.models import Job, Status
from tests.downloads.engine.conftest import run_until

DEFAULT_PLAN = {"ratio_limit": 1.0, "time_limit_minutes": 60}  # the default plan's limits


def decide(**overrides) -> str | None:
    args = {**DEFAULT_PLAN, "ratio": 0.0, "seeded_seconds": 0.0, "idle_seconds": 0.0, "private": False,
            "idle_limit_minutes": 30, **overrides}
    return seeding_done(**args)


@pytest.mark.parametrize(("case", "expected"), [
    ({}, None),
    ({"ratio": 1.0}, "seeded to ratio 1.00"),
    ({"seeded_seconds": 3600}, "seeded for 1:00:00"),
    ({"seeded_seconds": 1800, "idle_seconds": 1800}, "no peer wanted data for 0:30:00"),
    ({"seeded_seconds": 1800, "idle_seconds": 1799}, None),  # a peer took data 1799 s ago
    ({"seeded_seconds": 2000, "idle_seconds": 1900, "private": True}, None),  # private: the tracker's rules
    ({"seeded_seconds": 2000, "idle_seconds": 1900, "idle_limit_minutes": 0}, None),  # 0 turns the rule off
    ({"ratio_limit": 0, "time_limit_minutes": 0}, "no seeding required by the plan"),
    ({"ratio": 2.0, "idle_seconds": 5000}, "seeded to ratio 2.00"),  # the plan's reason wins when both hold
])
def test_seeding_done(case, expected):
    assert decide(**case) == expected


def test_idle_limit_defaults_to_the_setting(settings):
    settings.SEED_IDLE_MINUTES = 5
    args = {**DEFAULT_PLAN, "ratio": 0.0, "seeded_seconds": 400, "private": False}
    assert seeding_done(**args, idle_seconds=300) == "no peer wanted data for 0:05:00"
    assert seeding_done(**args, idle_seconds=299) is None


def test_idle_time_is_since_the_last_upload_capped_by_the_seeding_time():
    now = dt.datetime(2025, 1, 1, 12, 0, 0)
    assert idle_seconds(None, 120.0, now) == 120.0  # nobody ever took data: idle since seeding began
    assert idle_seconds(now - dt.timedelta(seconds=30), 120.0, now) == 30.0
    assert idle_seconds(now - dt.timedelta(hours=2), 120.0, now) == 120.0  # uploads while downloading
    aware = dt.datetime.now(dt.UTC)
    assert idle_seconds(aware - dt.timedelta(seconds=10), 60.0) == pytest.approx(10.0, abs=1)


@pytest.mark.django_db
def test_a_seed_nobody_wants_completes_after_the_idle_time(engine, local_swarm, user, settings):
    """The offline demo's situation: the default plan seeds for 60 min, the swarm has nobody to seed to."""
    assign_plan(user, Plan.objects.create(name="Default-like", seed_ratio_limit=1.0, seed_time_limit_minutes=60))
    settings.SEED_IDLE_MINUTES = 0.02  # 1.2 s
    payload = local_swarm.publish("demo.bin", 200_000)
    job = services.add_torrent(user, payload.torrent_bytes)
    run_until(engine, lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, what="completed")
    job.refresh_from_db()
    assert job.reason.startswith("Complete (no peer wanted data for"), job.reason
    assert (job.data_dir / "demo.bin").exists()
