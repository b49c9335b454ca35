"""Pages of the downloads app (the REST API lives in downloads/api_urls.py)."""

from django.urls import path

from downloads import pages

app_name = "downloads"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("jobs/<int:pk>/", pages.job_detail, name="job_detail"),
    path("failover/", pages.failover_policy, name="failover"),
]
