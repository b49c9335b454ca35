"""Signed-link downloads, mounted at /d/. The trailing file name is cosmetic (players and browsers show it)."""

from django.urls import path

from streaming import views

app_name = "delivery"
urlpatterns = [
    path("f/<str:token>/<str:filename>", views.file_download, name="file"),
    path("z/<str:token>/<str:name>", views.zip_download, name="zip"),
]
