"""Pages of the Seedr app (its REST API is in seedr/api_urls.py)."""

from django.urls import path

from seedr import views

app_name = "seedr"

urlpatterns = [
    path("seedr/", views.panel, name="panel"),
]
