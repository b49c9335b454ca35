"""Fakes of every indexer kind on 127.0.0.1 (tests/fakes), and indexers pointing at them."""

from __future__ import annotations

import json

import pytest

from tests.fakes.mam_fake import FakeMam
from tests.fakes.nyaa_fake import FakeNyaa
from tests.fakes.torznab_fake import FakeTorznab
from tests.fakes.yts_fake import FakeYts
from tests.indexers.factories import IndexerFactory


@pytest.fixture(autouse=True)
def _database_rate_limiter(settings):
    settings.INDEXERS_RATE_LIMITER = "database"


@pytest.fixture(params=["jackett", "prowlarr"])
def torznab(request):
    fake = FakeTorznab(flavour=request.param).serve()
    yield fake
    fake.stop()


@pytest.fixture
def jackett():
    fake = FakeTorznab(flavour="jackett").serve()
    yield fake
    fake.stop()


@pytest.fixture
def yts():
    fake = FakeYts().serve()
    yield fake
    fake.stop()


@pytest.fixture
def nyaa():
    fake = FakeNyaa().serve()
    yield fake
    fake.stop()


def mam_indexer(fake: FakeMam, owner, **extra):
    return IndexerFactory(owner=owner, kind="myanonamouse", url=fake.base_url, privacy="private",
                          credentials=json.dumps({"mam_id": fake.new_session()}), **extra)


def torznab_indexer(fake: FakeTorznab, owner, **extra):
    return IndexerFactory(owner=owner, kind="torznab", url=fake.feed_url, privacy="private",
                          credentials=json.dumps({"apikey": fake.apikey}), **extra)


def yts_indexer(fake: FakeYts, owner, **extra):
    return IndexerFactory(owner=owner, kind="yts", url=fake.base_url, privacy="public", credentials="", **extra)


def nyaa_indexer(fake: FakeNyaa, owner, **extra):
    return IndexerFactory(owner=owner, kind="nyaa", url=fake.base_url, privacy="public", credentials="", **extra)
