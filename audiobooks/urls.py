"""Pages of audiobooks (the REST API is in audiobooks/api_urls.py)."""

from django.urls import path

from audiobooks import views

app_name = "audiobooks"

urlpatterns = [
    path("audiobooks/", views.audiobook_list, name="list"),
    path("audiobooks/jobs/<int:job_id>/alerts/", views.job_alerts, name="job_alerts"),
]
