from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.metrics import metrics_view
from downloads.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("d/", include("downloads.delivery_urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("billing.urls")),
    path("", include("downloads.urls")),
    path("", include("seedr.urls")),
    path("", include("servers.urls")),
]
