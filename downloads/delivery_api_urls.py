"""Delivery routes under /api/v1/ (included by downloads/api_urls.py)."""

from django.urls import path

from downloads.delivery_views import JobFilesView

urlpatterns = [
    path("jobs/<int:pk>/files/", JobFilesView.as_view(), name="job-files"),
]
