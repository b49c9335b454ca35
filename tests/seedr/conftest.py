"""Fixtures for the Seedr tests: a live fake Seedr on 127.0.0.1, Flotilla pointed at it, a connected user,
and `drive()`, which plays the worker's part in-process (dispatch, sync, transfer tasks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from downloads import dispatch
from downloads.models import Job
from seedr import client, services
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.runs import run_due
from tests.fakes.seedr_fake import FakeSeedr

SEEDR_EMAIL = "alice@seedr.test"
SEEDR_PASSWORD = "s3cret-seedr"


def info_hash(n: int) -> str:
    return f"{n:040x}"


def magnet(n: int, name: str = "") -> str:
    return f"magnet:?xt=urn:btih:{info_hash(n)}&dn={name or f'Item+{n}'}"


@pytest.fixture
def fake(settings, tmp_path) -> Iterator[FakeSeedr]:
    fake = FakeSeedr(progress_step=50, device_interval=1).serve()
    fake.add_account(SEEDR_EMAIL, SEEDR_PASSWORD, space_max=50_000_000)
    settings.SEEDR_API_URL = fake.api_url
    settings.SEEDR_OAUTH_URL = fake.oauth_url
    settings.SEEDR_TEMP_DIR = tmp_path / "seedr-tmp"
    settings.PROGRESS_EVENT_INTERVAL = 0
    yield fake
    fake.stop()
    for account_id in list(client.runner.clients):
        client.forget(account_id)


@pytest.fixture
def plan(user):
    return PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=5)).plan


@pytest.fixture
def connected(fake, user, plan):
    """Alice's Flotilla account connected to her Seedr account (through the real password login)."""
    return services.password_login(user, SEEDR_EMAIL, SEEDR_PASSWORD)


def drive(rounds: int = 1) -> None:
    """What the worker does, in-process: dispatch, one sync per group, then the bring-home runs enqueued."""
    for _ in range(rounds):
        dispatch.dispatch_queued()
        dispatch.sync_running()
        run_due(backend="seedr")


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job
