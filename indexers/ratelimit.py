"""One rate limiter per indexer, shared by every process (web, worker), so two searches at once cannot break
a tracker's rules (MyAnonamouse: 2 s between requests).

`reserve(indexer_id, interval)` claims the next free start time and returns it; the caller waits until
then (outside any lock). Claims are spaced `interval` apart whoever makes them:
- with Redis (INDEXERS_RATE_LIMITER=cache, the default when REDIS_URL is set): a short lock in the cache
  (`add` is SET NX) around reading and advancing the indexer's next start time;
- without Redis (database, the default otherwise: the in-memory cache is per process and would let web and
  worker each send their own request): a compare-and-set on `IndexerThrottle.next_at_us` with a conditional
  UPDATE, retried when another process moved it first. Works on SQLite and PostgreSQL, inside or outside a
  transaction, and costs one or two queries.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from indexers.models import IndexerThrottle

LOCK_SECONDS = 5


def backend() -> str:
    choice = settings.INDEXERS_RATE_LIMITER
    if choice == "auto":
        return "cache" if settings.REDIS_URL else "database"
    return choice


def reserve(indexer_id: int, interval: float, *, now: float | None = None) -> float:
    """The wall-clock time (seconds) at which this caller may send its request to the indexer."""
    now = time.time() if now is None else now
    if interval <= 0:
        return now
    if backend() == "cache":
        return _reserve_cache(indexer_id, interval, now)
    return _reserve_database(indexer_id, interval, now)


def wait_until(start: float, deadline_wall: float) -> bool:
    """Sleep until `start`; False when that is past the deadline (the caller reports a rate-limit timeout)."""
    if start > deadline_wall:
        return False
    delay = start - time.time()
    if delay > 0:
        time.sleep(delay)
    return True


def _reserve_cache(indexer_id: int, interval: float, now: float) -> float:
    lock_key, next_key = f"indexers:rl:lock:{indexer_id}", f"indexers:rl:next:{indexer_id}"
    token = uuid.uuid4().hex
    give_up = time.monotonic() + LOCK_SECONDS * 2
    while not cache.add(lock_key, token, LOCK_SECONDS):
        if time.monotonic() > give_up:  # a holder died inside its few microseconds: its lock expires
            cache.delete(lock_key)
        time.sleep(0.002)
    try:
        start = max(time.time() if now is None else now, float(cache.get(next_key) or 0))
        cache.set(next_key, start + interval, timeout=int(interval) + 3600)
    finally:
        if cache.get(lock_key) == token:
            cache.delete(lock_key)
    return start


def _reserve_database(indexer_id: int, interval: float, now: float) -> float:
    step = int(interval * 1_000_000)
    for _ in range(100):
        row = IndexerThrottle.objects.filter(pk=indexer_id).values_list("next_at_us", flat=True).first()
        if row is None:
            try:
                with transaction.atomic():
                    IndexerThrottle.objects.create(indexer_id=indexer_id, next_at_us=0)
            except IntegrityError:
                pass  # another process created it: read it again
            continue
        start_us = max(int(now * 1_000_000), row)
        if IndexerThrottle.objects.filter(pk=indexer_id, next_at_us=row).update(next_at_us=start_us + step):
            return start_us / 1_000_000
        now = time.time()
    raise RuntimeError("rate limiter: too much contention")  # 100 lost races in a row: a bug, not load
