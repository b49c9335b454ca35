"""Mounted at /prowlarr/ (config/urls.py): the base URL AudioBookRequest and other Prowlarr clients are given.
A doubled slash after the base (`…/prowlarr//api/v1/search`, from a base URL ending in "/") still routes."""

from __future__ import annotations

from django.urls import re_path

from indexers.prowlarr import views as v

app_name = "prowlarr"

urlpatterns = [
    re_path(r"^(?:/*)ping/?$", v.ping, name="ping"),
    re_path(r"^(?:/*)api/?$", v.api_info, name="api"),
    re_path(r"^(?:/*)api/v1/system/status/?$", v.system_status, name="system-status"),
    re_path(r"^(?:/*)api/v1/indexer/?$", v.indexer_list, name="indexers"),
    re_path(r"^(?:/*)api/v1/indexer/categories/?$", v.categories, name="categories"),
    re_path(r"^(?:/*)api/v1/indexer/(?P<indexer_id>[0-9]{1,25})/?$", v.indexer_detail, name="indexer"),
    re_path(r"^(?:/*)api/v1/indexer/(?P<indexer_id>[0-9]{1,25})/download/?$", v.download, name="indexer-download"),
    re_path(r"^(?:/*)api/v1/search/?$", v.search, name="search"),
    re_path(r"^(?:/*)api/v1/search/bulk/?$", v.search_bulk, name="search-bulk"),
    re_path(r"^(?:/*)(?P<indexer_id>[0-9]{1,25})/download/?$", v.download, name="download"),
    re_path(r"^(?:/*)api/", v.not_found),  # Prowlarr's JSON 404 (after the key check), not the site's page
]
