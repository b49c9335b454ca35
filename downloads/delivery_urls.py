"""Signed-link downloads, mounted at /d/. The trailing file name is cosmetic (players and browsers show it)."""

from django.urls import path

from downloads import delivery_views

app_name = "delivery"
urlpatterns = [
    path("f/<str:token>/<str:filename>", delivery_views.file_download, name="file"),
    path("z/<str:token>/<str:name>", delivery_views.zip_download, name="zip"),
]
