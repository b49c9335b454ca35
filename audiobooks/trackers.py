"""Calls on a tracker with the user's indexer credentials, outside indexers' search and grab: the snatch list
(compliance) and the torrent's cover (the post-processor). Each request waits for the indexer's interval (MAM
asks 2 s apart); a cookie the tracker rotated is stored (encrypted) whatever the outcome."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from indexers import clients, ratelimit
from indexers.clients import IndexerClient
from indexers.models import Indexer

T = TypeVar("T")


def call(indexer: Indexer, work: Callable[[IndexerClient, Callable[[], None]], T], *, requests: int = 1) -> T:
    """`work(client, pace)` with the indexer's client; `work` calls `pace()` before each request it makes.
    Raises indexers' ClientError."""
    client = clients.build(indexer, deadline=time.monotonic() + indexer.timeout * max(1, requests))

    def pace() -> None:
        ratelimit.wait_until(ratelimit.reserve(indexer.pk, indexer.request_interval), time.time() + indexer.timeout)

    try:
        return work(client, pace)
    finally:
        if client.updated_secrets:
            indexer.set_secrets(client.updated_secrets)
            Indexer.objects.filter(pk=indexer.pk).update(credentials=indexer.credentials)
