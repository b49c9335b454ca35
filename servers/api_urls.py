"""/api/v1/servers/… and /api/v1/torrents/… (see servers/api.py)."""

from rest_framework.routers import SimpleRouter

from servers.api import ServerViewSet, TorrentViewSet

router = SimpleRouter()
router.register("servers", ServerViewSet, basename="server")
router.register("torrents", TorrentViewSet, basename="torrent")

urlpatterns = router.urls
