"""A user's own torrent servers (Transmission, rTorrent, qBittorrent) and what Flotilla last saw of them.

The password is encrypted at rest and never leaves the server (write-only in the API, absent from logs).
`status`/`failures`/`retry_at` are written by the poller and the connection test: a server in error is
skipped until `retry_at` (exponential backoff), so one dead server never slows the others down.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from config.crypto import EncryptedCharField


class ServerType(models.TextChoices):
    TRANSMISSION = "transmission", "Transmission"
    RTORRENT = "rtorrent", "rTorrent"
    QBITTORRENT = "qbittorrent", "qBittorrent"


class Transport(models.TextChoices):
    """How rTorrent is reached (the other types always speak HTTP)."""

    HTTP = "http", "XML-RPC over HTTP (/RPC2 behind a web server)"
    SCGI = "scgi", "SCGI (TCP port or unix socket)"


DEFAULT_PATHS = {ServerType.TRANSMISSION: "/transmission/rpc", ServerType.RTORRENT: "/RPC2",
                 ServerType.QBITTORRENT: ""}


class TorrentServerQuerySet(models.QuerySet):
    def for_user(self, user):
        """The one place servers are scoped: a user sees their own; admins see every server."""
        if getattr(user, "is_admin", False):
            return self.all()
        return self.filter(owner=user)

    def owned_by(self, user):
        """Where jobs may be added: only the user's own servers, admins included."""
        return self.filter(owner=user)

    def enabled(self):
        return self.filter(enabled=True)


class TorrentServer(models.Model):
    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        CONNECTED = "connected", "Connected"
        ERROR = "error", "Error"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="torrent_servers")
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=ServerType.choices)
    transport = models.CharField(max_length=8, choices=Transport.choices, default=Transport.HTTP,
                                 help_text="rTorrent only: XML-RPC over HTTP or SCGI.")
    host = models.CharField(max_length=253, blank=True, help_text="Host name or IP address.")
    port = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1),
                                                                           MaxValueValidator(65535)])
    use_tls = models.BooleanField(default=False, help_text="HTTPS (certificate verified).")
    rpc_path = models.CharField(max_length=200, blank=True,
                                help_text="Transmission: /transmission/rpc; rTorrent over HTTP: /RPC2; "
                                          "qBittorrent: empty, or the reverse proxy's prefix.")
    socket_path = models.CharField(max_length=300, blank=True,
                                   help_text="rTorrent over SCGI on a unix socket (instead of host and port).")
    username = models.CharField(max_length=150, blank=True)
    password = EncryptedCharField(max_length=300, blank=True)
    download_dir = models.CharField(max_length=500, blank=True,
                                    help_text="Where the server saves Flotilla's downloads (empty: its default).")
    # Remote → local path mapping (like the *arr apps): a save path under `remote_path` on the server is
    # readable here under `local_path` (a shared or mounted disk), so finished files can be delivered.
    remote_path = models.CharField(max_length=500, blank=True)
    local_path = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    status_message = models.CharField(max_length=300, blank=True)
    status_code = models.CharField(max_length=64, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    client_version = models.CharField(max_length=100, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="In error: not polled before this time.")
    error_since = models.DateTimeField(null=True, blank=True,
                                       help_text="In error since (the first failure of the current streak).")

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TorrentServerQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="torrentserver_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def backend_name(self) -> str:
        return f"server:{self.pk}"

    @property
    def uses_socket(self) -> bool:
        return self.type == ServerType.RTORRENT and self.transport == Transport.SCGI and bool(self.socket_path)

    @property
    def address(self) -> str:
        """Where it is, for people (never the credentials)."""
        if self.uses_socket:
            return f"unix:{self.socket_path}"
        scheme = "scgi" if self.type == ServerType.RTORRENT and self.transport == Transport.SCGI else (
            "https" if self.use_tls else "http")
        path = "" if scheme == "scgi" else (self.rpc_path or DEFAULT_PATHS[ServerType(self.type)])
        return f"{scheme}://{self.host}:{self.port}{path}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.type != ServerType.RTORRENT:
            self.transport = Transport.HTTP
            self.socket_path = ""
        if self.uses_socket:
            if not PurePosixPath(self.socket_path).is_absolute():
                errors["socket_path"] = "Give the absolute path of rTorrent's SCGI socket."
        else:
            if not self.host:
                errors["host"] = "Give the server's host name or IP address."
            if not self.port:
                errors["port"] = "Give the server's port."
        if self.rpc_path and not self.rpc_path.startswith("/"):
            errors["rpc_path"] = "The RPC path starts with '/'."
        if bool(self.remote_path) != bool(self.local_path):
            errors["local_path"] = "A path mapping needs both the remote and the local folder."
        for name in ("remote_path", "local_path"):
            value = getattr(self, name)
            if value and not PurePosixPath(value).is_absolute():
                errors[name] = "Give an absolute path."
        if errors:
            raise ValidationError(errors)

    def map_path(self, remote: str) -> str | None:
        """The local path of a path on the server, through the mapping; None when it falls outside it."""
        if not (self.remote_path and self.local_path and remote):
            return None
        remote_root = PurePosixPath(self.remote_path)
        path = PurePosixPath(remote)
        try:
            rest = path.relative_to(remote_root)
        except ValueError:
            return None
        if ".." in rest.parts:
            return None
        return str(PurePosixPath(self.local_path) / rest)
