from django.conf import settings


def seedr(request) -> dict:
    """Whether the Seedr page exists (for the navigation)."""
    return {"seedr_enabled": settings.SEEDR_ENABLED}
