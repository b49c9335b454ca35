from django.urls import path

from billing.api import usage

urlpatterns = [path("usage/", usage, name="api-usage")]
