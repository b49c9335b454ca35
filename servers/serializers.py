"""Shapes of the servers API. Serializers check shape only; servers.services (and the model's clean())
enforce the rules. Passwords are write-only: no response ever carries one."""

from __future__ import annotations

import ipaddress
import re

import idna
from django.conf import settings
from rest_framework import serializers

from config.params import MAX_ID
from servers.models import ServerType, TorrentServer, Transport

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PATH = re.compile(r"/[\x21-\x7e]*")  # printable ASCII, no spaces: it is sent as is in the request line


def normalize_host(value: str) -> str:
    """An IPv4/IPv6 literal (IPv6 with or without brackets, stored without), or a host name per RFC 1123
    (an internationalised name is stored in its ASCII form, so every client library can use it)."""
    value = value.strip()
    literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    try:
        ascii_name = idna.encode(value.rstrip("."), uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise serializers.ValidationError("Give a host name or an IP address.") from exc
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise serializers.ValidationError("Give a host name or an IP address.")
    if labels[-1].isdigit():  # "0", "1.2.3", "300.1.1.1": not an address, and not a name either (RFC 3696)
        raise serializers.ValidationError("Not a valid IP address.")
    return ascii_name


def check_credential(value: str, *, server_type: str, field: str) -> None:
    """Credentials go into HTTP headers: no control characters; a username never holds ':' (basic auth);
    Transmission (basic auth through `requests`) can only send Latin-1."""
    if _CONTROL.search(value):
        raise serializers.ValidationError({field: "Control characters are not allowed."})
    if field == "username" and ":" in value and server_type != ServerType.QBITTORRENT:
        raise serializers.ValidationError({field: "A username for HTTP authentication cannot contain ':'."})
    if server_type == ServerType.TRANSMISSION:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise serializers.ValidationError(
                {field: "Transmission accepts only Latin-1 characters here (HTTP basic authentication)."}) from exc


class ServerSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=300,
                                     trim_whitespace=False, style={"input_type": "password"},
                                     help_text="Write-only. Blank or absent on update: keep the stored one.")
    has_password = serializers.SerializerMethodField()
    address = serializers.CharField(read_only=True)
    owner = serializers.EmailField(source="owner.email", read_only=True)
    type = serializers.ChoiceField(choices=ServerType.choices)
    transport = serializers.ChoiceField(choices=Transport.choices, required=False)
    # A plain string in the schema: "status" is the jobs' enum there already.
    status = serializers.CharField(read_only=True, help_text="unknown, connected or error")

    class Meta:
        model = TorrentServer
        fields = ["id", "name", "type", "transport", "host", "port", "use_tls", "rpc_path", "socket_path", "username",
                  "password", "has_password", "download_dir", "remote_path", "local_path", "enabled", "address",
                  "owner", "status", "status_code", "status_message", "latency_ms", "client_version", "checked_at",
                  "retry_at", "created_at"]
        read_only_fields = ["id", "address", "owner", "status", "status_code", "status_message", "latency_ms",
                            "client_version", "checked_at", "retry_at", "created_at"]
        # Uniqueness and cross-field rules are the service's (one message shape for API, admin and pages).
        validators: list = []

    def get_has_password(self, server: TorrentServer) -> bool:
        return bool(server.password)

    def validate_host(self, value: str) -> str:
        return normalize_host(value) if value.strip() else ""

    def validate_rpc_path(self, value: str) -> str:
        if value and not _PATH.fullmatch(value):
            raise serializers.ValidationError("The RPC path starts with '/' and holds no spaces or other "
                                              "non-printable or non-ASCII characters.")
        return value

    def validate(self, attrs: dict) -> dict:
        """Rules that depend on the server type (the row's type on a partial update)."""
        server_type = attrs.get("type") or getattr(self.instance, "type", "")
        for name in ("username", "password"):
            if attrs.get(name):
                check_credential(attrs[name], server_type=server_type, field=name)
        for name in ("socket_path", "download_dir", "remote_path", "local_path"):
            if _CONTROL.search(attrs.get(name) or ""):
                raise serializers.ValidationError({name: "Control characters are not allowed."})
        if '"' in (attrs.get("download_dir") or "") and server_type == ServerType.RTORRENT:
            # rTorrent receives it inside a quoted command (d.directory.set="...").
            raise serializers.ValidationError({"download_dir": "rTorrent folders cannot contain '\"'."})
        return attrs


class TorrentFileSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    path = serializers.CharField()
    size = serializers.IntegerField()
    done = serializers.IntegerField()


class ServerRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField()


class TorrentSerializer(serializers.Serializer):
    """One torrent of the aggregated view (documentation of the shape; the service builds the dicts)."""

    hash = serializers.CharField()
    name = serializers.CharField()
    state = serializers.CharField(help_text="metadata, checking, queued, downloading, seeding, stopped, error")
    progress = serializers.FloatField()
    size = serializers.IntegerField()
    done = serializers.IntegerField()
    uploaded = serializers.IntegerField()
    ratio = serializers.FloatField()
    download_rate = serializers.IntegerField()
    upload_rate = serializers.IntegerField()
    eta = serializers.IntegerField(allow_null=True)
    peers = serializers.IntegerField()
    seeds = serializers.IntegerField()
    seeding_time = serializers.IntegerField(allow_null=True)
    save_path = serializers.CharField()
    has_metadata = serializers.BooleanField()
    complete = serializers.BooleanField()
    error = serializers.CharField()
    added_at = serializers.IntegerField(allow_null=True)
    server = ServerRefSerializer()
    job = serializers.IntegerField(allow_null=True, help_text="The Flotilla job that tracks it, if any.")
    job_status = serializers.CharField(allow_null=True)
    external = serializers.BooleanField(help_text="Not added through Flotilla (can be adopted).")
    files = TorrentFileSerializer(many=True, required=False)


class ServerErrorSerializer(serializers.Serializer):
    server = ServerRefSerializer()
    code = serializers.CharField()
    detail = serializers.CharField()


class TorrentListSerializer(serializers.Serializer):
    results = TorrentSerializer(many=True)
    errors = ServerErrorSerializer(many=True)


class TorrentAddSerializer(serializers.Serializer):
    """Exactly one of `magnet`, `url` (Flotilla fetches it) or `torrent` (multipart file), for `server_id`."""

    server_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    magnet = serializers.CharField(required=False, trim_whitespace=True, max_length=settings.MAGNET_MAX_LENGTH)
    url = serializers.CharField(required=False, trim_whitespace=True, max_length=4096)
    torrent = serializers.FileField(required=False, allow_empty_file=True)

    def validate(self, attrs):
        given = [k for k in ("magnet", "url", "torrent") if attrs.get(k)]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of a magnet link, a URL or a .torrent file.")
        torrent = attrs.get("torrent")
        if torrent is not None and torrent.size > settings.TORRENT_MAX_BYTES:
            raise serializers.ValidationError({"torrent": "The .torrent file is too large."})
        return attrs


class ServerChoiceSerializer(serializers.Serializer):
    server_id = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)


class TorrentDeleteSerializer(ServerChoiceSerializer):
    delete_data = serializers.BooleanField(default=False)
