"""Operator console for users, API keys and the audit log.

Changes that have a service go through it (enable/disable, revoke); plain admin edits are written to the
AuditLog by `AuditedAdmin`, so every mutation made here leaves the same trail as one made elsewhere.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm

from accounts import offboarding, services
from accounts.audit import record_audit
from accounts.models import ApiKey, AuditLog, User
from config.admin_paginator import CappedCountPaginator
from config.errors import DomainError


class AuditedAdmin(admin.ModelAdmin):
    """Mirror Django's admin LogEntry into our AuditLog (with IP and request id) for adds, edits, deletes.

    Django calls these hooks inside the same transaction as the save/delete, including the user password
    change view; the message lists changed field names only, never values. Set `audit_additions = False`
    where adding goes through a service that writes its own audit row.
    """

    audit_additions = True
    audit_deletions = True

    def log_addition(self, request, obj, message):
        if self.audit_additions:
            record_audit("admin.add", actor=request.user, target=obj, change=message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        record_audit("admin.change", actor=request.user, target=obj, change=message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        if self.audit_deletions:
            for obj in queryset:
                record_audit("admin.delete", actor=request.user, target=obj, repr=str(obj)[:200])
        return super().log_deletions(request, queryset)


class ServiceDeleteMixin:
    """Deletes go through a service: the delete page (`delete_model`) and the "Delete selected" action
    (`delete_queryset`) alike, one object at a time, so each gets the service's audit row and side effects
    (jobs of a removed server failed first, a user's jobs cancelled, …). Django's own LogEntry is still
    written; `audit_deletions = False` keeps AuditedAdmin from writing a second, generic audit row.

    A refusal (DomainError) on the delete page is shown as an error message; in a bulk delete the others
    go ahead and the refused ones are listed.
    """

    audit_deletions = False

    def delete_service(self, actor, obj) -> None:
        raise NotImplementedError

    def delete_model(self, request, obj) -> None:
        try:
            self.delete_service(request.user, obj)
        except DomainError as exc:
            self.message_user(request, f"{obj} was not deleted: {exc.detail}", messages.ERROR)

    def delete_queryset(self, request, queryset) -> None:
        skipped = []
        for obj in queryset:
            try:
                self.delete_service(request.user, obj)
            except DomainError as exc:
                skipped.append(f"{obj} ({exc.detail})")
        if skipped:
            report(self, request, "Deleted", len(queryset) - len(skipped), skipped)


class ReadOnlyMixin:
    """Rows written by the machine (or append-only by law): viewable, never editable here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False


def report(modeladmin: admin.ModelAdmin, request, verb: str, done: int, skipped: list[str]) -> None:
    """One success line with the count, one warning line listing what was skipped and why."""
    modeladmin.message_user(request, f"{verb}: {done}.", messages.SUCCESS)
    if skipped:
        shown = "; ".join(skipped[:20]) + (f"; … and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        modeladmin.message_user(request, f"Skipped {len(skipped)}: {shown}", messages.WARNING)


# --- users ----------------------------------------------------------------------------------------


class UserCreateForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        email = services.normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with this email already exists.")
        return email


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        email = services.normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A user with this email already exists.")
        return email


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    # Never the hash: it is the credential's only stored form.
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields


@admin.register(User)
class UserAdmin(ServiceDeleteMixin, AuditedAdmin, DjangoUserAdmin):
    """Users as accounts knows them; billing.admin registers the console's version with each user's plan
    (billing sits above accounts, so the plan column and inline are added there)."""

    form = UserEditForm
    add_form = UserCreateForm
    list_display = ("email", "role", "is_active", "email_verified", "date_joined", "last_login")
    list_filter = ("role", "is_active", "email_verified")
    search_fields = ("email",)
    ordering = ("email",)
    show_full_result_count = False
    inlines = (ApiKeyInline,)
    actions = ("disable_users", "enable_users")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("first_name", "last_name")}),
        (
            "Access",
            {
                "fields": ("role", "is_active", "is_staff", "is_superuser", "email_verified", "groups",
                           "user_permissions"),
                "description": "Role “Admin” grants the operator console (staff status and the "
                "“Operators” group follow it). Use the Disable / Enable actions in the user list to change "
                "“active”: they also end the user's sessions and write the audit log.",
            },
        ),
        ("Acceptable-use policy", {"fields": ("accepted_policy_version", "accepted_policy_at")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    readonly_fields = ("is_active", "is_staff", "accepted_policy_version", "accepted_policy_at", "last_login",
                       "date_joined")

    # What only a superuser may change: otherwise an operator could make themselves one.
    SUPERUSER_FIELDS = ("is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if request.user.is_superuser else (*fields, *self.SUPERUSER_FIELDS)

    def has_change_permission(self, request, obj=None):
        # An operator must not take over a superuser (new password, new email): view only.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None:
            try:
                offboarding.check_may_delete_user(request.user, obj)
            except DomainError:
                return False
        return super().has_delete_permission(request, obj)

    def delete_service(self, actor, obj: User) -> None:
        offboarding.delete_user(actor, obj)

    def get_deleted_objects(self, objs, request):
        # The confirmation page still lists everything that goes, but the operator needs no delete permission
        # on each related type: the service removes the user's jobs through the job service (read-only in
        # this console on purpose) and the rest goes with the row.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def save_model(self, request, obj: User, form, change: bool) -> None:
        # A new role is applied by the service after the form's groups are saved (save_related), so the
        # Operators membership it sets is not undone by the groups field, and it writes its own audit row.
        if change and "role" in form.changed_data:
            obj._new_role, obj.role = obj.role, form.initial["role"]
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        services.set_role(request.user, user, getattr(user, "_new_role", user.role))

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []  # nothing to list yet

    @admin.action(description="Disable selected users (ends their sessions)")
    def disable_users(self, request, queryset) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Enable selected users")
    def enable_users(self, request, queryset) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request, queryset, *, active: bool) -> None:
        done, skipped = 0, []
        for user in queryset:
            if user.is_active == active:
                skipped.append(f"{user.email} (already {'enabled' if active else 'disabled'})")
            elif not active and user.pk == request.user.pk:
                skipped.append(f"{user.email} (you cannot disable yourself)")
            else:
                try:
                    services.set_user_active(request.user, user, active)
                except DomainError as exc:
                    skipped.append(f"{user.email} ({exc.detail})")
                    continue
                done += 1
        report(self, request, "Enabled" if active else "Disabled", done, skipped)


# --- API keys -------------------------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("name", "prefix", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("last_used_at", admin.DateFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("name", "=prefix", "user__email")
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)
    show_full_result_count = False

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset) -> None:
        done, skipped = 0, []
        for api_key in queryset:
            if api_key.revoked_at is not None:
                skipped.append(f"{api_key} (already revoked)")
                continue
            services.revoke_api_key(request.user, api_key)
            done += 1
        report(self, request, "Revoked", done, skipped)


# --- audit log ------------------------------------------------------------------------------------


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor", "action", "target", "ip", "request_id")
    list_filter = ("action", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("actor",)
    search_fields = ("action", "=target_id", "=request_id")
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ("created_at", "actor", "action", "target_type", "target_id", "metadata", "ip", "request_id")
    readonly_fields = fields

    @admin.display(description="Target")
    def target(self, obj: AuditLog) -> str:
        return f"{obj.target_type}:{obj.target_id}" if obj.target_type else obj.target_id or "—"
