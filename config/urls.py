from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from downloads import pages as downloads_pages
from downloads.metrics import metrics_view
from downloads.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("d/", include("streaming.urls")),
    path("s/", include("streaming.share_urls")),  # public share links (issue 13)
    path("qbittorrent/", include("downloads.qbittorrent_api.urls")),  # qBittorrent Web API v2 (issue 14)
    path("prowlarr/", include("indexers.prowlarr.urls")),  # Prowlarr API v1 for AudioBookRequest (issue 12)
    path("torznab/", include("indexers.torznab.urls")),  # Torznab feeds for the *arr apps (issue 12)
    path("accounts/", include("accounts.urls")),
    # The usage page (billing) draws its storage chart from the spine's jobs; billing itself never reads them.
    path("usage/storage-by-download.json", downloads_pages.storage_chart, name="storage-by-download"),
    path("", include("billing.urls")),
    path("", include("downloads.urls")),
    path("", include("seedr.urls")),
    path("", include("servers.urls")),
    path("", include("indexers.urls")),  # the Search and Indexers pages (issue 12)
    path("", include("audiobooks.urls")),  # the Audiobooks page (issue 15)
]

# Errors raised outside DRF (unknown /api/ routes, a body over DATA_UPLOAD_MAX_MEMORY_SIZE read by a
# middleware) get the API's {"code", "detail"} shape on API routes and JSON requests (config/errors.py).
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
