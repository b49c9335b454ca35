"""Account flows: registration, email verification, policy acceptance, API keys, enabling/disabling users.

Every function that changes state writes an audit row in the same transaction. Secrets (passwords, raw
API keys, tokens) never reach the audit log or the logs.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from importlib import import_module

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts import roles, throttle
from accounts.audit import record_audit
from accounts.models import ApiKey, User, hash_api_key
from config.errors import DomainError, ValidationFailed
from config.logging import client_ip_var

log = logging.getLogger(__name__)

API_KEY_PREFIX = "flt_"
# Shown in lists so a user can tell keys apart; "flt_" + 8 random characters carries no usable secret.
_DISPLAY_PREFIX_LENGTH = 12


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


# --- registration and email verification ----------------------------------------------------------


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Tokens for the verification link. Its own salt, so a password-reset token is never a valid
    verification token; the hash covers email_verified, so a link stops working once it has been used."""

    key_salt = "accounts.services.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user, timestamp) -> str:
        return f"{user.pk}{user.email}{user.email_verified}{timestamp}"


email_verification_token = EmailVerificationTokenGenerator()


# --- rate limits (accounts/throttle.py; settings RATE_LIMIT_*) -----------------------------------------


def _client() -> str:
    """The requesting client (empty outside a request, which is then not counted)."""
    return throttle.client_key(client_ip_var.get())


def check_registration_allowed() -> None:
    throttle.check("sign-ups from your network", [("register-ip", _client(), "RATE_LIMIT_REGISTER_IP")])


def check_password_reset_allowed(email: str) -> None:
    """Counted whether or not the address has an account, so the answer reveals nothing."""
    throttle.check("password reset requests", [
        ("reset-email", normalize_email(email), "RATE_LIMIT_PASSWORD_RESET_EMAIL"),
        ("reset-ip", _client(), "RATE_LIMIT_PASSWORD_RESET_IP"),
    ])


def check_verification_resend_allowed(user: User) -> None:
    throttle.check("verification emails", [
        ("resend-email", user.email, "RATE_LIMIT_VERIFY_RESEND_EMAIL"),
        ("resend-ip", _client(), "RATE_LIMIT_VERIFY_RESEND_IP"),
    ])


@transaction.atomic
def register_user(email: str, password: str) -> User:
    """Create an ordinary user. The default plan applies by itself (billing.current_plan).
    Sign-ups per client address are limited (RATE_LIMIT_REGISTER_IP): Throttled, 429."""
    check_registration_allowed()
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise DomainError("An account with this email already exists.", code="email_taken", http_status=409)
    try:
        password_validation.validate_password(password, User(email=email))
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), code="invalid_password") from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
    except IntegrityError as exc:  # a concurrent registration with the same address won the race
        raise DomainError("An account with this email already exists.", code="email_taken", http_status=409) from exc
    record_audit("user.register", actor=user, target=user)
    return user


# One resend per user per this many seconds: the button must not become a way to flood an inbox.
RESEND_INTERVAL = 60


def _resend_key(user: User) -> str:
    return f"accounts:verify-resend:{user.pk}"


def resend_verification_email(user: User, *, request=None) -> str:
    """Send the link again unless one went out within RESEND_INTERVAL, or the address or the client asked
    too often (RATE_LIMIT_VERIFY_RESEND_*). Returns "sent", "throttled", "verified" (nothing to do) or
    "failed" (the mail server did not take it)."""
    if user.email_verified:
        return "verified"
    if not cache.add(_resend_key(user), 1, timeout=RESEND_INTERVAL):
        return "throttled"
    try:
        check_verification_resend_allowed(user)
    except throttle.Throttled:
        return "throttled"
    if not send_verification_email(user, request=request):
        cache.delete(_resend_key(user))
        return "failed"
    return "sent"


def verification_path(user: User) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("accounts:verify", kwargs={"uidb64": uidb64, "token": email_verification_token.make_token(user)})


def send_verification_email(user: User, *, request=None, base_url: str | None = None) -> bool:
    """Mail the verification link; False if the mail server refused or was unreachable (the user can ask
    again). The link's host comes from the request (checked against ALLOWED_HOSTS) or, for callers without
    one, from `base_url` / settings.SITE_URL."""
    path = verification_path(user)
    if request is not None:
        url = request.build_absolute_uri(path)
    else:
        url = (base_url or settings.SITE_URL).rstrip("/") + path
    context = {"user": user, "url": url}
    subject = render_to_string("accounts/email/verify_subject.txt", context).strip()
    body = render_to_string("accounts/email/verify_email.txt", context)
    try:
        send_mail(subject, body, None, [user.email])
    except (OSError, smtplib.SMTPException):
        # An account that exists but got no mail is recoverable (resend); a 500 after sign-up is not.
        log.exception("could not send verification email", extra={"user_id": user.pk})
        return False
    cache.set(_resend_key(user), 1, timeout=RESEND_INTERVAL)
    log.info("verification email sent", extra={"user_id": user.pk})
    return True


def user_from_uidb64(uidb64: str) -> User | None:
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        return None
    return User.objects.filter(pk=pk).first()


@transaction.atomic
def verify_email(uidb64: str, token: str) -> User | None:
    """Mark the user's address verified if the token is valid; None for a bad, expired or used link."""
    user = user_from_uidb64(uidb64)
    if user is None or user.email_verified or not email_verification_token.check_token(user, token):
        return None
    user.email_verified = True
    user.save(update_fields=["email_verified"])
    record_audit("user.verify_email", actor=user, target=user)
    return user


def check_can_create_jobs(user) -> None:
    """Account-level conditions for creating jobs (called from downloads.services.check_can_create)."""
    if settings.REQUIRE_EMAIL_VERIFICATION and not user.email_verified:
        raise DomainError(
            "Verify your email address before adding downloads.", code="email_not_verified", http_status=403
        )


@transaction.atomic
def reset_password(user: User, password: str) -> User:
    """Set a new password after a reset link (the form has validated it). Changing the password hash
    also ends the user's other sessions, since each session carries a hash of it."""
    user.set_password(password)
    user.save(update_fields=["password"])
    record_audit("user.password_reset", actor=user, target=user)
    return user


# --- acceptable-use policy ------------------------------------------------------------------------


@transaction.atomic
def accept_policy(user: User) -> User:
    user.accepted_policy_version = settings.ACCEPTABLE_USE_VERSION
    user.accepted_policy_at = timezone.now()
    user.save(update_fields=["accepted_policy_version", "accepted_policy_at"])
    record_audit("user.accept_policy", actor=user, target=user, version=user.accepted_policy_version)
    return user


# --- API keys -------------------------------------------------------------------------------------


@transaction.atomic
def create_api_key(user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for `user`. Returns the row and the raw key, which is never stored and never shown again."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Give the key a name.", code="invalid")
    if len(name) > ApiKey._meta.get_field("name").max_length:
        raise ValidationFailed("The name is too long.", code="invalid")
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        user=user, name=name, prefix=raw[:_DISPLAY_PREFIX_LENGTH], key_hash=hash_api_key(raw)
    )
    record_audit("api_key.create", actor=user, target=api_key, name=name, prefix=api_key.prefix)
    return api_key, raw


@transaction.atomic
def revoke_api_key(actor, api_key: ApiKey) -> ApiKey:
    """Revoke a key (idempotent). Callers scope the lookup to the actor, so this does not re-check ownership."""
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    if updated:
        record_audit("api_key.revoke", actor=actor, target=api_key, owner_id=api_key.user_id, prefix=api_key.prefix)
    return api_key


# --- operator actions -----------------------------------------------------------------------------


@transaction.atomic
def set_user_active(actor, user: User, active: bool) -> User:
    """Enable or disable a user. A disabled user's sessions are deleted; API keys stop working because
    key authentication only accepts active users."""
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        record_audit("user.enable" if active else "user.disable", actor=actor, target=user)
    if not active:
        transaction.on_commit(lambda: end_sessions(user.pk))
    return user


@transaction.atomic
def set_role(actor, user: User, role: str) -> User:
    """Grant or revoke the admin role: the role decides `is_staff` (User.save) and membership of the
    Operators group, which holds the console's permissions (accounts/roles.py)."""
    if role not in User.Role.values:
        raise ValidationFailed(f"Unknown role {role[:40]!r}.", code="invalid_role")
    previous = User.objects.filter(pk=user.pk).values_list("role", flat=True).first()
    user.role = role
    user.save(update_fields=["role", "is_staff"])
    roles.sync_user_access(user)
    if previous != role:
        record_audit("user.role", actor=actor, target=user, role=role, previous=previous)
    return user


@transaction.atomic
def delete_record(actor, obj, *, action: str, **metadata) -> None:
    """Delete one console-managed row that needs nothing but its audit trail (a plan, a plan assignment, a
    blocklist entry): the audit row and the delete commit together. Rows with side effects have their own
    service (servers.services.delete_server, accounts.offboarding.delete_user)."""
    record_audit(action, actor=actor, target=obj, repr=str(obj)[:200], **metadata)
    obj.delete()


def end_sessions(user_id: int) -> int:
    """Delete every stored session of a user; returns how many. Only session engines backed by a table can
    be searched; with others a disabled user is still refused on the next request (inactive users fail
    ModelBackend.get_user)."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    model = store_class.get_model_class()
    store = store_class()
    doomed = [
        session.session_key
        for session in model.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(store.decode(session.session_data).get("_auth_user_id")) == str(user_id)
    ]
    for key in doomed:
        store_class(session_key=key).delete()  # also clears a cached_db copy
    return len(doomed)


# --- login bookkeeping (called from accounts.signals) ---------------------------------------------


def record_login(user: User) -> None:
    record_audit("user.login", actor=user, target=user)


def record_logout(user: User | None) -> None:
    if user is not None and user.is_authenticated:
        record_audit("user.logout", actor=user, target=user)


def record_login_failed(username: str) -> None:
    # Only the address that was tried: the credentials dict also holds the (cleansed) password.
    record_audit("user.login_failed", target_type="accounts.user", email=normalize_email(username)[:254])
