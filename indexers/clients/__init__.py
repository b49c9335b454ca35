"""Indexer clients: one module per kind, registered by kind name, one error type (like servers/clients/).

`build(indexer, deadline=…)` hands out a fresh client for one call: the decrypted credentials, the URL, the
address rule (internal addresses allowed for the operator's shared indexers, for users' own ones only with
INDEXERS_ALLOW_INTERNAL) and the deadline every request of the call must meet.
"""

from __future__ import annotations

from django.conf import settings

from indexers.clients.base import Capabilities, ClientError, IndexerClient, Query, Release
from indexers.clients.myanonamouse import MyAnonamouseClient
from indexers.clients.nyaa import NyaaClient
from indexers.clients.torznab import TorznabClient
from indexers.clients.yts import YtsClient

__all__ = ["KINDS", "Capabilities", "ClientError", "IndexerClient", "Query", "Release", "build", "register"]

KINDS: dict[str, type[IndexerClient]] = {}


def register(cls: type[IndexerClient]) -> type[IndexerClient]:
    KINDS[cls.kind] = cls
    return cls


for _cls in (MyAnonamouseClient, TorznabClient, YtsClient, NyaaClient):
    register(_cls)


def allows_internal(indexer) -> bool:
    return indexer.owner_id is None or settings.INDEXERS_ALLOW_INTERNAL


def build(indexer, *, deadline: float) -> IndexerClient:
    cls = KINDS.get(indexer.kind)
    if cls is None:
        raise ClientError(f"Unknown indexer kind {indexer.kind!r}.", code="indexer_kind", permanent=True)
    return cls(url=indexer.url, secrets=indexer.secrets, deadline=deadline, allow_internal=allows_internal(indexer),
               account_status=indexer.account_status)
