"""Deleting a user (the admin console's delete). It reaches into the job spine — each job is deleted through
downloads.services (cancelled on its backend, files removed, a "deleted" event) — so it sits above both
accounts.services and downloads.services instead of inside either.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.audit import record_audit
from accounts.models import User
from config.errors import Conflict, DomainError
from downloads import services as jobs
from downloads.models import Job


def check_may_delete_user(actor, user: User) -> None:
    if actor is not None and actor.pk == user.pk:
        raise Conflict("You cannot delete your own account.", code="self_delete")
    if user.is_superuser and not getattr(actor, "is_superuser", False):
        raise DomainError("Only a superuser can delete a superuser.", code="permission_denied", http_status=403)


def delete_user(actor, user: User) -> None:
    """Delete a user with everything they own. Their jobs go first, one by one through the job service, so a
    running download stops on its backend instead of running on for an owner who no longer exists."""
    check_may_delete_user(actor, user)
    for job in Job.objects.for_user(user).defer("magnet", "torrent"):
        jobs.delete_job(actor, job)
    user_id, email = user.pk, user.email
    with transaction.atomic():
        record_audit("user.delete", actor=actor, target=user, email=email)
        user.delete()
    jobs.remove_tree(settings.DOWNLOADS_DIR / str(user_id))
