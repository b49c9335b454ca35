"""Receivers for Django's auth signals. They only hand over to services (no logic here).

Connected by importing this module from AccountsConfig.ready().
"""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import services


@receiver(user_logged_in, dispatch_uid="accounts.audit_login")
def _on_login(sender, request, user, **kwargs) -> None:
    services.record_login(user)


@receiver(user_logged_out, dispatch_uid="accounts.audit_logout")
def _on_logout(sender, request, user, **kwargs) -> None:
    services.record_logout(user)


@receiver(user_login_failed, dispatch_uid="accounts.audit_login_failed")
def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    services.record_login_failed(str(credentials.get("username") or credentials.get("email") or ""))
