"""The Search and Indexers pages. They render the first state on the server (the user's indexers, backends and
kinds); static/js/search.js and static/js/indexers.js do the rest over /api/v1/search/ and /api/v1/indexers/.
Nothing secret reaches the page: indexers go through IndexerSerializer, whose credentials are write-only."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.decorators import policy_required
from downloads.pages import backend_choices
from indexers import clients
from indexers.models import Indexer, Kind, Privacy
from indexers.serializers import IndexerSerializer

# What "kind" means on the Search page: the API's search type plus the Newznab categories that name it.
SEARCH_KINDS: dict[str, dict] = {
    "": {"label": "Anything", "kind": "search", "categories": []},
    "movie": {"label": "Movies", "kind": "movie", "categories": [2000]},
    "tv": {"label": "TV", "kind": "tvsearch", "categories": [5000]},
    "music": {"label": "Music", "kind": "music", "categories": [3000]},
    "book": {"label": "Books", "kind": "book", "categories": [7000]},
    "audiobook": {"label": "Audiobooks", "kind": "book", "categories": [3030]},
}

# Labels of the write-only credential fields, by name (a kind lists the names it takes: secret_names).
SECRET_LABELS = {"mam_id": "mam_id session cookie", "apikey": "API key"}


def _indexers(request: HttpRequest):
    return Indexer.objects.for_user(request.user).select_related("owner")


def _kinds() -> list[dict]:
    """Every indexer kind with what the add dialog needs to show its own fields."""
    return [{"value": value, "label": label, "default_url": clients.KINDS[value].default_url,
             "privacy": clients.KINDS[value].default_privacy,
             "secrets": [{"name": name, "label": SECRET_LABELS.get(name, name)}
                         for name in clients.KINDS[value].secret_names]}
            for value, label in Kind.choices if value in clients.KINDS]


@policy_required
@ensure_csrf_cookie
def search_page(request: HttpRequest) -> HttpResponse:
    indexers = [i for i in _indexers(request) if i.enabled]
    backends = backend_choices(request.user)
    config = {
        "apiSearch": reverse("search-list"),
        "grabUrl": reverse("search-grab", args=[0]),
        "dashboardUrl": reverse("downloads:dashboard"),
        "kinds": {key: {"kind": k["kind"], "categories": k["categories"]} for key, k in SEARCH_KINDS.items()},
        "backendLabels": {b["value"]: b["label"] for b in backends},
    }
    return render(request, "indexers/search.html", {
        "nav": "search",
        "indexers": indexers,
        "backends": backends,
        "kinds": [(key, k["label"]) for key, k in SEARCH_KINDS.items()],
        "query": request.GET.get("q", "")[:500],
        "config": config,
    })


@policy_required
@ensure_csrf_cookie
def indexer_list(request: HttpRequest) -> HttpResponse:
    rows = IndexerSerializer(_indexers(request), many=True).data
    config = {
        "apiIndexers": reverse("indexer-list"),
        "searchUrl": reverse("indexers:search"),
        "kinds": {k["value"]: k for k in _kinds()},
        "privacyLabels": dict(Privacy.choices),
    }
    return render(request, "indexers/list.html", {
        "nav": "indexers",
        "rows": rows,
        "kinds": _kinds(),
        "privacies": Privacy.choices,
        "config": config,
        "rows_json": list(rows),
    })
