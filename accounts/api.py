"""REST endpoints for the current user: /api/v1/me/ and /api/v1/api-keys/."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.generics import RetrieveAPIView
from rest_framework.response import Response

from accounts import services
from accounts.models import ApiKey
from accounts.serializers import ApiKeySerializer, MeSerializer, NewApiKeySerializer


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents accounts.authentication.ApiKeyAuthentication in the schema (registered on import; the URLconf
    imports this module before any schema is generated)."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` (or send the key alone in an `X-Api-Key` header).",
        }


class ApiKeyViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your API keys. Create returns the key once; DELETE revokes it (the row stays, marked revoked)."""

    serializer_class = ApiKeySerializer

    def get_queryset(self):
        return ApiKey.objects.for_user(self.request.user)

    @extend_schema(request=ApiKeySerializer, responses={201: NewApiKeySerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, raw = services.create_api_key(request.user, serializer.validated_data["name"])
        return Response(NewApiKeySerializer(api_key, context={"raw_key": raw}).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiKey) -> None:
        services.revoke_api_key(self.request.user, instance)


class MeView(RetrieveAPIView):
    """The authenticated user."""

    serializer_class = MeSerializer

    def get_object(self):
        return self.request.user
