"""System checks for the Seedr settings: a bad value fails `manage.py check` (and every process start)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def seedr_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    if settings.SEEDR_MULTIFILE_MODE not in ("files", "archive"):
        errors.append(Error("SEEDR_MULTIFILE_MODE must be 'files' or 'archive', "
                            f"not {settings.SEEDR_MULTIFILE_MODE!r}.", id="seedr.E001"))
    if settings.SEEDR_BATCH_CONCURRENCY < 1:
        errors.append(Error("SEEDR_BATCH_CONCURRENCY must be at least 1.", id="seedr.E002"))
    for name in ("SEEDR_API_URL", "SEEDR_OAUTH_URL"):
        if not str(getattr(settings, name)).startswith(("http://", "https://")):
            errors.append(Error(f"{name} must be an http(s) URL.", id="seedr.E003"))
    return errors
