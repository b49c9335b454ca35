"""Delivery routes under /api/v1/ (included by config/api_urls.py)."""

from django.urls import path

from streaming.views import JobFilesView

urlpatterns = [
    path("jobs/<int:pk>/files/", JobFilesView.as_view(), name="job-files"),
]
