"""The OpenAPI schema's error responses: every operation documents the `{"code", "detail"}` errors it can
answer, so clients (and the schema-driven fuzz in tests/config/test_api_fuzz.py) can rely on the schema for
error statuses too. The statuses come from the operation's shape (a body, parameters, a change, a remote
service behind it); `extend_schema(responses=...)` on a view still wins for a status it names."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every API error (config/errors.py)."""

    code = serializers.CharField(help_text="A stable machine code, e.g. `invalid`, `not_found`, `conflict`.")
    detail = serializers.CharField(help_text="A sentence for people.")
    errors = serializers.JSONField(required=False, help_text="Per-field (or per-line) errors, when relevant.")


DESCRIPTIONS = {
    400: "Invalid input (`invalid`, `invalid_filter`, `parse_error`, …).",
    401: "No or invalid credentials.",
    403: "Not allowed (permission, quota, policy not accepted, email not verified, …).",
    404: "Not found, or not yours.",
    409: "The action does not apply to the object's current state.",
    413: "The request body is larger than this server accepts (`too_large`).",
    415: "A request body in a media type this operation does not read.",
    429: "Too many requests.",
    502: "A server or service behind Flotilla (a torrent server, Seedr, a link) failed or refused.",
}
# Operations under these prefixes talk to torrent servers or Seedr even to read.
REMOTE_PREFIXES = ("/api/v1/torrents/", "/api/v1/seedr/", "/api/v1/servers/{id}/test/")


class AutoSchema(SpectacularAutoSchema):
    def _error_statuses(self) -> list[int]:
        writes = self.method in ("POST", "PUT", "PATCH", "DELETE")
        body = self.method in ("POST", "PUT", "PATCH")
        parameters = "{" in self.path or bool(self._get_parameters())
        statuses = [401, 403, 429]
        if body or parameters:
            statuses += [400, 404]
        if body:
            statuses += [413, 415]
        if writes:
            statuses += [404, 409]
        if writes or self.path.startswith(REMOTE_PREFIXES):
            statuses.append(502)
        return sorted(set(statuses))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            if str(status) not in responses:
                response = self._get_response_for_code(ErrorSerializer, str(status), direction=direction)
                responses[str(status)] = {**response, "description": DESCRIPTIONS[status]}
        return responses
