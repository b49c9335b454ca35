"""Accounts routes under /api/v1/."""

from django.urls import path

from accounts.api import ApiKeyViewSet, MeView

urlpatterns = [
    path("me/", MeView.as_view(), name="me"),
    path("api-keys/", ApiKeyViewSet.as_view({"get": "list", "post": "create"}), name="api-key-list"),
    path("api-keys/<int:pk>/", ApiKeyViewSet.as_view({"delete": "destroy"}), name="api-key-detail"),
]
