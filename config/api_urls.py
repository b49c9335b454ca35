"""Everything under /api/v1/: each app contributes its own routes."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("billing.api_urls")),
    path("", include("downloads.api_urls")),
    path("", include("seedr.api_urls")),
    path("", include("servers.api_urls")),
    path("", include("indexers.api_urls")),
    path("", include("streaming.api_urls")),
    path("", include("audiobooks.api_urls")),
]
