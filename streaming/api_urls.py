"""Delivery and streaming routes under /api/v1/ (included by config/api_urls.py)."""

from django.urls import path, re_path

from streaming import play_api, share_api, stream_views
from streaming.views import JobFilesView

urlpatterns = [
    path("jobs/<int:pk>/files/", JobFilesView.as_view(), name="job-files"),
    path("shares/", share_api.ShareListView.as_view(), name="shares"),
    path("shares/<int:pk>/revoke/", share_api.ShareRevokeView.as_view(), name="share-revoke"),
    # /api/v1/stream/<job>[/<file>], with or without the trailing slash (players and curl users type both).
    re_path(r"^stream/(?P<job_id>[0-9]{1,19})/?$", stream_views.stream, name="stream-job"),
    re_path(r"^stream/(?P<job_id>[0-9]{1,19})/(?P<file_id>[0-9]{1,19})/?$", stream_views.stream,
            name="stream-file"),
    path("stream/<int:job_id>/<int:file_id>/stats/", stream_views.StreamStatsView.as_view(), name="stream-stats"),
    # Play without downloading, keep, and the preload queue (streaming/play_api.py).
    path("stream/play/", play_api.PlayView.as_view(), name="stream-play"),
    path("stream/play/<int:job_id>/", play_api.PlayStatusView.as_view(), name="stream-play-status"),
    path("jobs/<int:job_id>/keep/", play_api.KeepView.as_view(), name="job-keep"),
    path("ui/viewport", play_api.ViewportView.as_view(), name="ui-viewport"),
]
