"""sync/maindata: a full snapshot on rid=0 (or a rid this session never got), else only what changed.

Each answer's snapshot is kept in the cache under (session, rid) for SYNC_SNAPSHOT_SECONDS. With the in-memory
cache of a single-process install a request landing on another process simply gets a full update, which is
what qBittorrent does for any rid it does not know (clients handle `full_update`).
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache

from downloads.qbittorrent_api import services, shapes

SYNC_SNAPSHOT_SECONDS = 600


def _key(session: str, rid: int) -> str:
    return f"qbt:sync:{hashlib.sha256(session.encode()).hexdigest()[:32]}:{rid}"


def _next_rid(session: str) -> int:
    key = _key(session, 0) + ":counter"
    try:
        return cache.incr(key)
    except ValueError:
        cache.set(key, 1, SYNC_SNAPSHOT_SECONDS * 6)
        return 1


def snapshot(user) -> dict:
    rows = shapes.torrent_list(user, services.visible_jobs(user))
    torrents = {}
    for row in rows:
        row = dict(row)
        torrents[row.pop("hash")] = row  # maindata keys torrents by hash and leaves the field out
    return {"categories": shapes.categories(user), "server_state": shapes.server_state(user),
            "tags": services.all_tags(user), "torrents": torrents}


def maindata(user, session: str, rid: int) -> dict:
    current = snapshot(user)
    previous = cache.get(_key(session, rid)) if rid > 0 else None
    new_rid = _next_rid(session)
    cache.set(_key(session, new_rid), current, SYNC_SNAPSHOT_SECONDS)
    if previous is None:
        return {**current, "full_update": True, "rid": new_rid, "trackers": {}}
    return {**delta(previous, current), "rid": new_rid}


def delta(old: dict, new: dict) -> dict:
    """What changed from `old` to `new`, in qBittorrent's delta keys; unchanged sections are left out."""
    out: dict = {}
    torrents = {}
    for hash_, row in new["torrents"].items():
        before = old["torrents"].get(hash_)
        changed = row if before is None else {k: v for k, v in row.items() if before.get(k) != v}
        if changed:
            torrents[hash_] = changed
    if torrents:
        out["torrents"] = torrents
    if removed := [h for h in old["torrents"] if h not in new["torrents"]]:
        out["torrents_removed"] = removed
    if categories := {n: c for n, c in new["categories"].items() if old["categories"].get(n) != c}:
        out["categories"] = categories
    if removed := [n for n in old["categories"] if n not in new["categories"]]:
        out["categories_removed"] = removed
    if tags := [t for t in new["tags"] if t not in old["tags"]]:
        out["tags"] = tags
    if removed := [t for t in old["tags"] if t not in new["tags"]]:
        out["tags_removed"] = removed
    if server := {k: v for k, v in new["server_state"].items() if old["server_state"].get(k) != v}:
        out["server_state"] = server
    return out
