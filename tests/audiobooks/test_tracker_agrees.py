""""The tracker agrees", per torrent: a ledger is satisfied only when Flotilla's clock (plus the margin) AND the
tracker's own unsatisfied snatch list say so — read from the MyAnonamouse fake over real HTTP, once per
indexer, paged, only when a ledger waits for it; a failed read changes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from audiobooks.compliance import services as compliance
from audiobooks.compliance.models import SeedingLedger, TrackerRules
from downloads.models import Status
from indexers.models import JobSource
from tests.downloads.factories import JobFactory
from tests.indexers.factories import IndexerFactory

pytestmark = pytest.mark.django_db
SNATCHES = "/json/loadUserDetailsTorrents.php"


@pytest.fixture(autouse=True)
def _rules(settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    TrackerRules.objects.filter(tracker="myanonamouse").update(min_seed_time=dt.timedelta(hours=72),
                                                               satisfied_margin=dt.timedelta(hours=1))


@pytest.fixture
def indexer(user, mam):
    return IndexerFactory(owner=user, kind="myanonamouse", url=mam.base_url, request_interval=0,
                          credentials=json.dumps({"mam_id": mam.new_session()}),
                          account_status={"uid": 4242, "unsatisfied": 1, "unsatisfied_limit": 50})


def seeded(user, indexer, mam, hours: float, *, title: str = "Book") -> SeedingLedger:
    """A job grabbed from the fake that Flotilla's clock has seen seeding `hours`."""
    tid = mam.add(title)
    job = JobFactory(user=user, backend="server:1", status=Status.COMPLETED)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name="MAM", title=title,
                             guid=f"https://www.myanonamouse.net/t/{tid}")
    seconds = int(hours * 3600)
    return SeedingLedger.objects.create(job=job, tracker="myanonamouse", seeded_seconds=seconds,
                                        completed_at=timezone.now(),
                                        satisfied_at=timezone.now() if seconds >= 72 * 3600 else None)


def tid_of(ledger: SeedingLedger) -> int:
    return compliance.tracker_torrent_id(ledger.job.indexer_source)


def fresh(ledger: SeedingLedger) -> SeedingLedger:
    ledger.refresh_from_db()
    return ledger


def test_satisfied_only_once_the_tracker_no_longer_lists_it(user, indexer, mam):
    ledger = seeded(user, indexer, mam, 73.5)
    mam.snatches["unsat"] = [tid_of(ledger)]
    assert compliance.check_snatches() == 0
    assert fresh(ledger).satisfied_at is not None and not ledger.satisfied  # Flotilla's clock alone: no
    mam.snatches["unsat"] = []
    assert compliance.check_snatches() == 1
    assert fresh(ledger).satisfied and ledger.tracker_satisfied_at is not None
    [request] = mam.paths(SNATCHES)[-1:]
    assert dict(request["query"])["uid"] == "4242" and dict(request["query"])["type"] == "unsat"
    assert compliance.check_snatches() == 0  # confirmed once: never asked again
    assert len(mam.paths(SNATCHES)) == 3  # the listed read, the empty one; nothing for a confirmed ledger


def test_the_tracker_is_not_asked_before_the_clock_and_margin(user, indexer, mam):
    too_early = seeded(user, indexer, mam, 72.5)  # satisfied by the clock, the margin (1 h) not passed
    unsatisfied = seeded(user, indexer, mam, 10, title="Other")
    assert compliance.check_snatches() == 0
    assert not mam.paths(SNATCHES)
    assert not fresh(too_early).satisfied and not fresh(unsatisfied).satisfied


def test_every_page_of_the_list_is_read(user, indexer, mam):
    mam.snatch_page_size = 2
    ledgers = [seeded(user, indexer, mam, 80, title=f"Book {i}") for i in range(5)]
    mam.snatches["unsat"] = [tid_of(ledger) for ledger in ledgers[:4]] + [9_999_999]
    assert compliance.check_snatches() == 1  # only the fifth book is off the list (found on page 2, of 3)
    assert [fresh(ledger).satisfied for ledger in ledgers] == [False] * 4 + [True]
    assert [dict(r["query"])["iteration"] for r in mam.paths(SNATCHES)] == ["0", "1", "2", "3"]


def test_a_failed_read_changes_nothing(user, indexer, mam):
    ledger = seeded(user, indexer, mam, 80)
    mam.expire_all()  # the session expired: 403 "you are not signed in"
    assert compliance.check_snatches() == 0
    assert not fresh(ledger).satisfied


def test_local_unsatisfied_counts_a_torrent_until_both_clocks_agree(user, indexer, mam):
    ledger = seeded(user, indexer, mam, 80)
    assert compliance.local_unsatisfied(user.pk, indexer.pk) == 1
    SeedingLedger.objects.filter(pk=ledger.pk).update(tracker_satisfied_at=timezone.now())
    assert compliance.local_unsatisfied(user.pk, indexer.pk) == 0


@pytest.mark.parametrize(("guid", "info_url", "expected"), [
    ("https://www.myanonamouse.net/t/123456", "", 123456),
    ("guid-without-id", "https://www.myanonamouse.net/t/42/", 42),
    ("https://www.myanonamouse.net/t/12x", "", None),
    ("", "", None),
])
def test_tracker_torrent_id(guid, info_url, expected):
    assert compliance.tracker_torrent_id(JobSource(guid=guid, info_url=info_url)) == expected
