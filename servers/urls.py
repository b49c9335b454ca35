"""Pages of the servers app (its REST API is in servers/api_urls.py)."""

from django.urls import path

from servers import views

app_name = "servers"

urlpatterns = [
    path("servers/", views.server_list, name="list"),
]
