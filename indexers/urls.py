"""Pages of the indexers app: Search and Indexers (the REST API is in indexers/api_urls.py)."""

from django.urls import path

from indexers import views

app_name = "indexers"

urlpatterns = [
    path("search/", views.search_page, name="search"),
    path("indexers/", views.indexer_list, name="list"),
]
