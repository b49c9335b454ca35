from django.urls import include, path
from rest_framework.routers import SimpleRouter

from downloads.api import BatchViewSet, JobViewSet

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("batches", BatchViewSet, basename="batch")

urlpatterns = [
    path("", include("downloads.delivery_api_urls")),
    *router.urls,
]
