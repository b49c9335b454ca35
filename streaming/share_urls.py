"""Public share links, mounted at /s/ (streaming/shares.py). The token in the path is the credential."""

from django.urls import path

from streaming import views

app_name = "share"
urlpatterns = [
    path("<str:token>/", views.share_page, name="page"),
    path("<str:token>/f/<int:file_id>/<str:name>", views.share_file, name="file"),
    path("<str:token>/zip/<str:name>", views.share_zip, name="zip"),
]
