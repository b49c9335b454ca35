"""Page forms for the account flows. They check shape only; the services apply the rules."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm

from accounts import services, throttle
from accounts.models import ApiKey, User


class DescribeFormErrorsMixin:
    """After validation, point every input at the form-level errors (id="form-errors" in _fields.html) so a
    screen reader announces "wrong email or password" with the field, not only once at the top."""

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and self.non_field_errors():
            for name, field in self.fields.items():
                described = self[name].aria_describedby or ""
                field.widget.attrs["aria-describedby"] = f"form-errors {described}".strip()
                field.widget.attrs["aria-invalid"] = "true"


class EmailAuthenticationForm(DescribeFormErrorsMixin, AuthenticationForm):
    """Login by email. The field keeps the name "username" because django-axes reads that name."""

    username = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account.",
    }

    def clean_username(self) -> str:
        # Lower-cased before authenticate(): addresses are stored lower-case, and axes counts failures
        # by the credentials passed to authenticate, so case variants share one failure counter.
        return services.normalize_email(self.cleaned_data["username"])


class RegistrationForm(forms.Form):
    email = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_email(self) -> str:
        email = services.normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError("An account with this email already exists.", code="email_taken")
        return email

    def clean(self) -> dict:
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", forms.ValidationError("The two passwords differ.", code="password_mismatch"))
        elif password1:
            try:
                password_validation.validate_password(password1, User(email=cleaned.get("email", "")))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class EmailPasswordResetForm(PasswordResetForm):
    email = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        try:
            services.check_password_reset_allowed(email)
        except throttle.Throttled as exc:
            raise forms.ValidationError(exc.detail, code="throttled") from exc
        return email


class ResetPasswordForm(SetPasswordForm):
    """The new-password step of a reset; saving goes through the service so it is audited."""

    def save(self, commit: bool = True) -> User:
        return services.reset_password(self.user, self.cleaned_data["new_password1"])


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text="Something to recognise it by, e.g. “laptop script” or “Sonarr”.",
    )
