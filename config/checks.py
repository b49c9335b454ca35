"""System checks for settings that would otherwise fail late or silently."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_flotilla_settings(app_configs, **kwargs):
    problems = []
    if not os.access(settings.DATA_DIR, os.W_OK):
        problems.append(Error(f"DATA_DIR {settings.DATA_DIR} is not writable.", id="flotilla.E001"))
    for name in ("SIGNED_URL_MAX_AGE", "PROGRESS_EVENT_INTERVAL", "EVENT_RELAY_INTERVAL", "TORRENT_MAX_BYTES",
                 "BATCH_MAX_LINES"):
        if getattr(settings, name) <= 0:
            problems.append(Error(f"{name} must be positive.", id="flotilla.E002"))
    if settings.HTTPS and not settings.SITE_URL.startswith("https://"):
        problems.append(Warning("HTTPS is on but SITE_URL is not an https:// URL (links in emails).",
                                id="flotilla.W001"))
    if settings.DEBUG:
        problems.append(Warning("DEBUG is on: never run like this on a network.", id="flotilla.W002"))
    return problems
