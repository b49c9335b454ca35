"""Pages of the billing app (the REST API lives in billing/api_urls.py)."""

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("plans/", views.plans, name="plans"),
    path("plans/<int:pk>/upgrade/", views.upgrade, name="upgrade"),
]
