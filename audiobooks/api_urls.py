"""/api/v1/audiobooks/… (see audiobooks/api.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from audiobooks.api import AudiobookViewSet, SettingsView, TrackerStatusView

router = SimpleRouter()
router.register("audiobooks", AudiobookViewSet, basename="audiobook")

urlpatterns = [
    path("audiobooks/settings/", SettingsView.as_view(), name="audiobook-settings"),
    path("audiobooks/tracker/", TrackerStatusView.as_view(), name="audiobook-tracker"),
    *router.urls,
]
