from django.urls import path
from rest_framework.routers import SimpleRouter

from downloads.api import BatchViewSet, FailoverPolicyView, FileView, JobViewSet, health_snapshot

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("batches", BatchViewSet, basename="batch")

urlpatterns = [
    path("admin/health/", health_snapshot, name="api-health"),
    path("files/<int:pk>/", FileView.as_view(), name="file-detail"),
    path("failover-policy/", FailoverPolicyView.as_view(), name="failover-policy"),
    *router.urls,
]
