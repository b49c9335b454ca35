"""Account pages: login/logout, registration, email verification, password reset, policy, API keys.

Views parse input, call one service and render; the rules live in accounts.services.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import botcheck, services
from accounts.forms import (
    ApiKeyCreateForm,
    EmailAuthenticationForm,
    EmailPasswordResetForm,
    RegistrationForm,
    ResetPasswordForm,
)
from accounts.models import ApiKey
from config.errors import DomainError


def _dashboard_url() -> str:
    return reverse("downloads:dashboard")


def _policy_url(next_url: str = "") -> str:
    url = reverse("accounts:policy")
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _safe_next(request: HttpRequest, candidate: str | None) -> str | None:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return None


# --- login / logout -------------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    form_class = EmailAuthenticationForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return super().get_context_data(registration_open=settings.REGISTRATION_OPEN, **kwargs)

    def get_success_url(self) -> str:
        url = super().get_success_url()
        # A user who has not accepted the current policy version reads it first, then goes on.
        if self.request.user.is_authenticated and not self.request.user.has_accepted_policy:
            return _policy_url(url)
        return url


class LogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET), so a link or an image cannot log a user out."""


# --- registration and verification ----------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if not settings.REGISTRATION_OPEN:
        raise Http404("Registration is closed.")
    if request.user.is_authenticated:
        return redirect(_dashboard_url())
    form = RegistrationForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            # The bot check first: a refused answer creates nothing and uses up no sign-up of the address.
            botcheck.check(request.POST, remote_ip=request.META.get("REMOTE_ADDR", ""))
            user = services.register_user(form.cleaned_data["email"], form.cleaned_data["password1"])
        except DomainError as exc:
            field = {"email_taken": "email", "throttled": None, "bot_check_failed": None}.get(exc.code, "password1")
            form.add_error(field, exc.detail)
            status = exc.http_status if exc.code in ("throttled", "bot_check_failed") else 200
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if services.send_verification_email(user, request=request):
                messages.success(request, f"Welcome! We sent a verification link to {user.email}.")
            else:
                messages.warning(request, "Welcome! We could not send the verification email; ask for it again below.")
            return redirect(_policy_url())
    return render(request, "accounts/register.html", {"form": form, "bot_check": botcheck.widget_context()},
                  status=status)


@never_cache
@require_http_methods(["GET"])
def altcha_challenge(request: HttpRequest) -> HttpResponse:
    """A fresh signed ALTCHA challenge for the registration page's widget (one per page load)."""
    if not settings.REGISTRATION_OPEN or botcheck.mode() != "altcha":
        raise Http404("No ALTCHA challenge here.")
    return JsonResponse(botcheck.new_challenge())


@never_cache
@require_http_methods(["GET"])
def verify(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    user = services.verify_email(uidb64, token)
    if user is None:
        if request.user.is_authenticated and request.user.email_verified:
            messages.info(request, "Your email address is already verified.")
            return redirect(_dashboard_url())
        return render(request, "accounts/verify_failed.html", status=400)
    messages.success(request, f"Thank you, {user.email} is verified.")
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    if not request.user.has_accepted_policy:
        return redirect(_policy_url())
    return redirect(_dashboard_url())


@login_required
@require_POST
def verify_resend(request: HttpRequest) -> HttpResponse:
    outcome = services.resend_verification_email(request.user, request=request)
    if outcome == "sent":
        messages.success(request, f"We sent a new verification link to {request.user.email}.")
    elif outcome == "verified":
        messages.info(request, "Your email address is already verified.")
    elif outcome == "throttled":
        messages.warning(request, "A link was sent recently. Check your inbox (and spam folder), or try again "
                                  "later.")
    else:
        messages.error(request, "We could not send the email just now. Please try again later.")
    next_url = _safe_next(request, request.POST.get("next"))
    return redirect(next_url or _dashboard_url())


# --- password reset (Django's views, our forms and templates) -------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    form_class = EmailPasswordResetForm
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/email/password_reset_email.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_invalid(self, form):
        # Over the rate limit: the form says so, and the status tells scripts (429).
        response = super().form_invalid(form)
        if form.has_error("email", code="throttled"):
            response.status_code = 429
        return response


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = ResetPasswordForm
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


# --- acceptable-use policy ------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def policy(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "POST":
        services.accept_policy(request.user)
        messages.success(request, "Thank you. You can add downloads now.")
        return redirect(next_url or _dashboard_url())
    return render(
        request,
        "accounts/policy.html",
        {"version": settings.ACCEPTABLE_USE_VERSION, "next": next_url or ""},
    )


# --- API keys -------------------------------------------------------------------------------------


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """List and create keys. A new key is rendered in the response to the POST itself (never stored,
    never in a URL or the session); never_cache keeps it out of the browser cache."""
    form = ApiKeyCreateForm(request.POST or None)
    new_key = raw_key = None
    if request.method == "POST" and form.is_valid():
        try:
            new_key, raw_key = services.create_api_key(request.user, form.cleaned_data["name"])
        except DomainError as exc:
            form.add_error("name", exc.detail)
        else:
            form = ApiKeyCreateForm()
    keys = ApiKey.objects.for_user(request.user)
    return render(
        request,
        "accounts/api_keys.html",
        {"nav": "api_keys", "form": form, "keys": keys, "new_key": new_key, "raw_key": raw_key},
    )


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes. Another user's key is a 404."""
    api_key = get_object_or_404(ApiKey.objects.for_user(request.user), pk=pk)
    if request.method == "POST":
        services.revoke_api_key(request.user, api_key)
        messages.success(request, f"The key “{api_key.name}” is revoked.")
        return redirect("accounts:api_keys")
    return render(request, "accounts/api_key_revoke.html", {"nav": "api_keys", "key": api_key})
