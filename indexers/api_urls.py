"""/api/v1/indexers/… and /api/v1/search/… (see indexers/api.py)."""

from rest_framework.routers import SimpleRouter

from indexers.api import IndexerViewSet, SearchViewSet

router = SimpleRouter()
router.register("indexers", IndexerViewSet, basename="indexer")
router.register("search", SearchViewSet, basename="search")

urlpatterns = router.urls
