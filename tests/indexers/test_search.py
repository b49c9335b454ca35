"""The fan-out search: concurrency, per-indexer errors and timings, merging, ranking, filters, tokens,
stored results with expiry, health and backoff."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from indexers import services
from indexers.models import Indexer, SearchResult
from tests.indexers.conftest import mam_indexer, nyaa_indexer, torznab_indexer, yts_indexer

pytestmark = pytest.mark.django_db


def test_a_slow_indexer_does_not_hold_the_others(jackett, nyaa, user):
    jackett.add("Frieren slow copy")
    nyaa.add("Frieren fast copy")
    slow = torznab_indexer(jackett, user, timeout=1.0)
    nyaa_indexer(nyaa, user)
    jackett.delay = 5
    started = time.monotonic()
    outcome = services.search(user, "frieren")
    assert time.monotonic() - started < jackett.delay  # cut at its 1 s timeout, not waited for
    assert [r.title for r in outcome.results] == ["Frieren fast copy"]
    assert [(e["indexer"], e["code"]) for e in outcome.errors] == [(slow.pk, "timeout")]
    assert [t["count"] for t in outcome.timings] == [1]


def test_indexers_are_asked_concurrently(user):
    from tests.fakes.nyaa_fake import FakeNyaa

    fakes = [FakeNyaa().serve() for _ in range(4)]
    gate = threading.Barrier(len(fakes), timeout=30)  # each answers once all four were asked
    try:
        for i, fake in enumerate(fakes):
            fake.add(f"Show {i}")
            fake.gate = gate
            nyaa_indexer(fake, user)
        outcome = services.search(user, "show")
        assert outcome.errors == [] and len(outcome.results) == 4
    finally:
        for fake in fakes:
            fake.stop()


def test_duplicates_merge_by_info_hash_keeping_the_best_seeded(jackett, user):
    from tests.fakes.torznab_fake import FakeTorznab

    other = FakeTorznab(flavour="prowlarr").serve()
    try:
        jackett.add("Same Book [M4B]", info_hash="c" * 40, seeders=3)
        other.add("Same Book (M4B)", info_hash="C" * 40, seeders=30, freeleech=True)
        first = torznab_indexer(jackett, user)
        second = torznab_indexer(other, user)
        [result] = services.search(user, "same book").results
        assert result.indexer_id == second.pk and result.seeders == 30
        assert result.extra["also_on"] == [first.name] and "freeleech" in result.flags
    finally:
        other.stop()


def test_ranking_prefers_seeders_freeleech_and_quality(jackett, user):
    jackett.add("Book A mp3", seeders=5)
    jackett.add("Book B m4b", seeders=5, freeleech=True)
    jackett.add("Book C mp3", seeders=500)
    torznab_indexer(jackett, user)
    titles = [r.title for r in services.search(user, "book").results]
    assert titles == ["Book C mp3", "Book B m4b", "Book A mp3"]


def test_filters_and_categories(jackett, user):
    jackett.add("Audio one", category=3030, seeders=1, size=100)
    jackett.add("Audio two", category=3030, seeders=9, size=5000, freeleech=True)
    jackett.add("Movie 1080p", category=2040, seeders=9)
    torznab_indexer(jackett, user)
    assert {r.title for r in services.search(user, "", categories=[3000]).results} == {"Audio one", "Audio two"}
    filters = services.Filters(min_seeders=2, freeleech_only=True)
    assert [r.title for r in services.search(user, "", filters=filters).results] == ["Audio two"]
    assert [r.title for r in services.search(user, "", filters=services.Filters(qualities=["1080p"])).results] == [
        "Movie 1080p"]
    assert [r.title for r in services.search(user, "", filters=services.Filters(max_size=1000)).results] == [
        "Audio one"]


def test_prowlarr_tokens_become_fields():
    query = services.parse_query("{author:Andy Weir}{title:Project Hail Mary} unabridged", "book")
    assert query.fields == {"author": "Andy Weir", "title": "Project Hail Mary"}
    assert query.text == "unabridged" and query.kind == "book"
    assert services.parse_query("plain words", "nonsense").kind == "search"


def test_results_are_stored_with_expiry_and_keep_their_id(mam, user, settings):
    settings.SEARCH_RESULT_TTL_DAYS = 2
    mam.add("Project Hail Mary")
    mam_indexer(mam, user)
    [first] = services.search(user, "hail mary").results
    [again] = services.search(user, "hail mary").results
    assert first.pk == again.pk
    stored = SearchResult.objects.get(pk=first.pk)
    assert timedelta(days=1.9) < stored.expires_at - timezone.now() < timedelta(days=2.1)
    assert stored.download_url.endswith(f"tid={stored.extra['mam_id']}")
    SearchResult.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Exception, match="expired"):
        services.get_result(user, first.pk)
    assert services.purge_expired() == 1


def test_rotated_mam_cookie_is_persisted_encrypted(mam, user):
    mam.add("Artemis")
    indexer = mam_indexer(mam, user)
    before = indexer.secrets["mam_id"]
    services.search(user, "artemis")
    services.search(user, "artemis")  # works only with the persisted cookie (the fake is strict)
    indexer.refresh_from_db()
    assert indexer.secrets["mam_id"] != before and indexer.consecutive_failures == 0
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM indexers_indexer WHERE id = %s", [indexer.pk])
        raw = cursor.fetchone()[0]
    assert indexer.secrets["mam_id"] not in raw and before not in raw


def test_repeated_failures_back_off_then_recover_by_itself(yts, user):
    indexer = yts_indexer(yts, user)
    yts.fail_next(500, "x", times=2)
    services.search(user, "x")
    services.search(user, "x")
    indexer.refresh_from_db()
    assert indexer.in_backoff() and indexer.consecutive_failures == 2
    calls = len(yts.requests)
    [error] = services.search(user, "x").errors
    assert error["code"] == "backoff" and "Backed off after 2 failure(s)" in error["detail"]
    assert len(yts.requests) == calls  # not asked while backed off
    Indexer.objects.filter(pk=indexer.pk).update(backoff_until=timezone.now() - timedelta(seconds=1))
    assert services.search(user, "x").errors == []
    indexer.refresh_from_db()
    assert indexer.consecutive_failures == 0 and indexer.backoff_until is None and indexer.success_rate < 1


def test_shared_indexers_reach_everyone_or_one_plan(nyaa, user, other_user):
    from billing.models import Plan

    nyaa.add("Shared show")
    plan = Plan.objects.create(name="gold")
    shared = nyaa_indexer(nyaa, None, name="For everyone")
    gold = nyaa_indexer(nyaa, None, name="Gold only", shared_with_plan=plan)
    from tests.billing.factories import PlanAssignmentFactory

    PlanAssignmentFactory(user=user, plan=plan)
    assert set(Indexer.objects.for_user(user)) == {shared, gold}
    assert set(Indexer.objects.for_user(other_user)) == {shared}
    assert {r.indexer_id for r in services.search(other_user, "shared").results} == {shared.pk}


def test_other_users_indexer_ids_are_ignored_and_none_usable_is_400(nyaa, user, other_user):
    theirs = nyaa_indexer(nyaa, other_user)
    with pytest.raises(services.DomainError) as error:
        services.search(user, "x", indexer_ids=[theirs.pk])
    assert error.value.code == "no_indexers" and nyaa.requests == []


def test_yts_and_mam_together(yts, mam, user):
    yts.add("Martian", 2015)
    mam.add("The Martian")
    yts_indexer(yts, user)
    mam_indexer(mam, user)
    outcome = services.search(user, "martian")
    assert len(outcome.results) == 3 and outcome.errors == [] and len(outcome.timings) == 2
