"""/api/v1/audiobooks/… (see audiobooks/api.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from audiobooks.api import AudiobookViewSet, SettingsView

router = SimpleRouter()
router.register("audiobooks", AudiobookViewSet, basename="audiobook")

urlpatterns = [
    path("audiobooks/settings/", SettingsView.as_view(), name="audiobook-settings"),
    *router.urls,
]
