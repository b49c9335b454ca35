"""Writing the audit log. Every mutating service calls `record_audit` inside its transaction."""

from __future__ import annotations

from typing import Any

from django.db import models

from accounts.models import AuditLog
from config.logging import client_ip_var, request_id_var

# Keys whose values must never reach the audit log, whatever a caller passes.
_SECRET_KEYS = {"password", "token", "key", "api_key", "secret", "magnet", "torrent", "access_token"}


def record_audit(
    action: str,
    *,
    actor=None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: Any = "",
    **metadata: Any,
) -> AuditLog:
    if target is not None:
        target_type = target._meta.label_lower
        target_id = target.pk
    clean = {k: ("[redacted]" if k in _SECRET_KEYS else v) for k, v in metadata.items()}
    ip = client_ip_var.get()
    request_id = request_id_var.get()
    return AuditLog.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        metadata=clean,
        ip=ip or None,
        request_id="" if request_id == "-" else request_id,
    )
