"""Mounted at /torznab/ (config/urls.py): a feed per indexer (`/torznab/<id>/api`) and one across all of the
key's user's indexers (`/torznab/all/api`), plus the download proxy their links point at."""

from __future__ import annotations

from django.urls import re_path

from indexers.torznab import views as v

app_name = "torznab"

urlpatterns = [
    re_path(r"^(?P<indexer_id>all|[0-9]{1,25})/api/?$", v.api, name="api"),
    re_path(r"^(?P<indexer_id>[0-9]{1,25})/download/?$", v.download, name="download"),
]
