"""Deleting a user (the admin console's delete) with everything they own.

What the apps above accounts hold for a user goes first, through their own services: each registers a
remover in its AppConfig.ready() (the spine deletes each job through downloads.services, so a running
download stops on its backend instead of running on for an owner who no longer exists). accounts never
imports those apps: it sits below them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from accounts.audit import record_audit
from accounts.models import User
from config.errors import Conflict, DomainError

Remover = Callable[[Any, User], None]
_removers: dict[str, Remover] = {}


def register_remover(name: str, remove: Remover) -> None:
    """`remove(actor, user)` deletes what the app `name` holds for the user, before the user row goes."""
    _removers[name] = remove


def check_may_delete_user(actor, user: User) -> None:
    if actor is not None and actor.pk == user.pk:
        raise Conflict("You cannot delete your own account.", code="self_delete")
    if user.is_superuser and not getattr(actor, "is_superuser", False):
        raise DomainError("Only a superuser can delete a superuser.", code="permission_denied", http_status=403)


def delete_user(actor, user: User) -> None:
    """Delete a user with everything they own: each app's remover first, then the row (audited)."""
    check_may_delete_user(actor, user)
    for remove in _removers.values():
        remove(actor, user)
    with transaction.atomic():
        record_audit("user.delete", actor=actor, target=user, email=user.email)
        user.delete()
