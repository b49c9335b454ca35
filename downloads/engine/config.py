"""libtorrent session settings, built from Django settings (see README, "ENGINE_*")."""

from __future__ import annotations

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
