"""Emptying the cache between tests without touching a second copy of the suite running beside this one."""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def clear_this_runs_cache() -> None:
    """`cache.clear()` on Redis is FLUSHDB: it would also empty the cache, channel layer and task queue of
    another copy of the suite on the same REDIS_URL under its own REDIS_KEY_PREFIX. Only this run's keys go."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        cache.clear()
        return
    client = cache._cache.get_client(None, write=True)
    keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
