"""libtorrent session settings, built from Django settings (see README, "ENGINE_*"), and the rule that
ends seeding (the plan's limits plus SEED_IDLE_MINUTES)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import libtorrent as lt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# What the engine reacts to: state changes, errors, metadata, resume data and storage (moved/deleted files).
ALERT_MASK = (
    lt.alert_category.error
    | lt.alert_category.status
    | lt.alert_category.storage
    | lt.alert_category.tracker
)


def user_agent() -> str:
    return f"Flotilla/1 libtorrent/{lt.__version__}"


def session_settings() -> dict[str, Any]:
    """The settings_pack for the engine's session. Unknown names in ENGINE_LIBTORRENT_SETTINGS are refused."""
    pack: dict[str, Any] = {
        "listen_interfaces": settings.ENGINE_LISTEN_INTERFACES,
        "download_rate_limit": settings.ENGINE_DOWNLOAD_RATE_LIMIT,
        "upload_rate_limit": settings.ENGINE_UPLOAD_RATE_LIMIT,
        "connections_limit": settings.ENGINE_CONNECTIONS_LIMIT,
        "enable_dht": settings.ENGINE_DHT,
        "enable_lsd": settings.ENGINE_LSD,
        "enable_upnp": settings.ENGINE_UPNP,
        "enable_natpmp": settings.ENGINE_NATPMP,
        "alert_mask": int(ALERT_MASK),
        "user_agent": user_agent(),
        # Flotilla decides what runs (claims, plan slots); libtorrent's own queueing must not pause anything.
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": -1,
        "active_checking": 2,
    }
    overrides = settings.ENGINE_LIBTORRENT_SETTINGS
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured("ENGINE_LIBTORRENT_SETTINGS must be a JSON object.")
    known = lt.default_settings()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ImproperlyConfigured(f"ENGINE_LIBTORRENT_SETTINGS: unknown libtorrent settings {unknown}.")
    for name, value in overrides.items():
        if type(value) is not type(known[name]) and not (isinstance(known[name], int) and isinstance(value, bool)):
            raise ImproperlyConfigured(
                f"ENGINE_LIBTORRENT_SETTINGS: {name} must be a {type(known[name]).__name__}, not {value!r}."
            )
    pack.update(overrides)
    return pack


def seeding_done(*, ratio_limit: float, time_limit_minutes: int, ratio: float, seeded_seconds: float,
                 idle_seconds: float, private: bool, idle_limit_minutes: float | None = None) -> str | None:
    """Why seeding ends now, or None to keep seeding: the plan's ratio or time limit, whichever comes first;
    or nobody wanting data for SEED_IDLE_MINUTES (0 = never), since a seed nobody asks for only holds a
    slot. Private torrents are exempt from the idle rule: their trackers count seeding time, not demand."""
    idle_limit = settings.SEED_IDLE_MINUTES if idle_limit_minutes is None else idle_limit_minutes
    if not ratio_limit and not time_limit_minutes:
        return "no seeding required by the plan"
    if ratio_limit and ratio >= ratio_limit:
        return f"seeded to ratio {ratio:.2f}"
    if time_limit_minutes and seeded_seconds >= time_limit_minutes * 60:
        return f"seeded for {dt.timedelta(seconds=int(seeded_seconds))}"
    if idle_limit and not private and idle_seconds >= idle_limit * 60:
        return f"no peer wanted data for {dt.timedelta(seconds=int(idle_seconds))}"
    return None


def idle_seconds(last_upload: dt.datetime | None, seeded_seconds: float, now: dt.datetime | None = None) -> float:
    """Seconds since a peer last took data from this seed (libtorrent's `last_upload`: a naive local time,
    None when nothing was ever uploaded), capped by how long it has seeded: an upload while downloading
    says nothing about demand for the finished torrent."""
    if last_upload is None:
        return seeded_seconds
    now = now or (dt.datetime.now(last_upload.tzinfo) if last_upload.tzinfo else dt.datetime.now())
    return max(0.0, min(seeded_seconds, (now - last_upload).total_seconds()))
