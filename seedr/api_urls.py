"""/api/v1/seedr/… (see seedr/api.py)."""

from django.urls import path

from seedr import api

urlpatterns = [
    path("seedr/device/start/", api.device_start, name="seedr-device-start"),
    path("seedr/device/poll/", api.device_poll, name="seedr-device-poll"),
    path("seedr/login/", api.login, name="seedr-login"),
    path("seedr/logout/", api.logout, name="seedr-logout"),
    path("seedr/add/", api.add, name="seedr-add"),
    path("seedr/batch-add/", api.batch_add, name="seedr-batch-add"),
    path("seedr/cancel/", api.cancel, name="seedr-cancel"),
    path("seedr/clear/", api.clear, name="seedr-clear"),
    path("seedr/start/", api.start, name="seedr-start"),
    path("seedr/retry/", api.retry, name="seedr-retry"),
    path("seedr/auto-start/", api.auto_start, name="seedr-auto-start"),
    path("seedr/status/", api.queue_status, name="seedr-status"),
    path("seedr/account/", api.account, name="seedr-account"),
    path("seedr/account/refresh/", api.account_refresh, name="seedr-account-refresh"),
]
