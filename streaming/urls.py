"""Signed-link downloads and the player, mounted at /d/. The trailing file name is cosmetic (players and
browsers show it)."""

from django.urls import path

from streaming import stream_views, views

app_name = "delivery"
urlpatterns = [
    path("f/<str:token>/<str:filename>", views.file_download, name="file"),
    path("z/<str:token>/<str:name>", views.zip_download, name="zip"),
    path("play/<int:job_id>/", stream_views.player, name="player"),
    path("play/<int:job_id>/<int:file_id>/", stream_views.player, name="player-file"),
]
