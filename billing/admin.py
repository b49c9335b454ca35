"""Operator console for plans, plan assignments and metered usage."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from accounts import services as accounts
from accounts.admin import AuditedAdmin, ReadOnlyAdmin, ReadOnlyInline, ServiceDeleteMixin, UserAdmin, report
from accounts.models import User
from billing import services
from billing.models import Plan, PlanAssignment, UpgradeRequest, UsageDay


def _limit(value: int) -> str:
    return "unlimited" if not value else filesizeformat(value)


# --- users, with their plan --------------------------------------------------------------------------


class PlanAssignmentInline(ReadOnlyInline):
    model = PlanAssignment
    fields = ("plan", "starts_at", "expires_at", "note")
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")


def _current_plan_name() -> Coalesce:
    """The plan `billing.services.current_plan` would pick, as a subquery (one query for the whole page)."""
    assignment = (
        PlanAssignment.objects.current().filter(user=OuterRef("pk")).order_by("-starts_at", "-id").values("plan__name")
    )
    default = Plan.objects.filter(is_default=True).order_by("id").values("name")
    return Coalesce(Subquery(assignment[:1]), Subquery(default[:1]))


class PlanUserAdmin(UserAdmin):
    """The console's user admin: accounts' own, plus each user's current plan (a column, an inline of the
    assignments and a link to assign one). Registered here, in place of accounts', because billing sits
    above accounts: accounts never imports billing."""

    list_display = ("email", "role", "is_active", "email_verified", "current_plan", "date_joined", "last_login")
    inlines = (PlanAssignmentInline, *UserAdmin.inlines)
    fieldsets = (*UserAdmin.fieldsets[:3], ("Plan", {"fields": ("assign_plan_link",)}), *UserAdmin.fieldsets[3:])
    readonly_fields = (*UserAdmin.readonly_fields, "assign_plan_link")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(current_plan_name=_current_plan_name())

    @admin.display(description="Plan")
    def current_plan(self, obj: User) -> str:
        return obj.current_plan_name or "—"

    @admin.display(description="Plan assignment")
    def assign_plan_link(self, obj: User) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:billing_planassignment_add") + f"?user={obj.pk}"
        return format_html('<a href="{}">Assign a plan…</a> (current: {})', url, obj.current_plan_name or "—")


admin.site.unregister(User)
admin.site.register(User, PlanUserAdmin)


@admin.register(Plan)
class PlanAdmin(ServiceDeleteMixin, AuditedAdmin):
    list_display = ("name", "is_default", "max_active_jobs", "storage", "job_size", "monthly_transfer",
                    "retention_days", "allowed_backends", "seed_ratio_limit", "seed_time_limit_minutes")
    list_filter = ("is_default",)
    search_fields = ("name",)

    def has_delete_permission(self, request, obj=None):
        # Users without an assignment fall back to the default plan; a plan still assigned is protected
        # by its foreign key (the delete page lists the assignments instead).
        if obj is not None and obj.is_default:
            return False
        return super().has_delete_permission(request, obj)

    def delete_service(self, actor, obj: Plan) -> None:
        accounts.delete_record(actor, obj, action="plan.delete", name=obj.name)

    @admin.display(description="Storage", ordering="max_storage_bytes")
    def storage(self, obj: Plan) -> str:
        return _limit(obj.max_storage_bytes)

    @admin.display(description="Largest job", ordering="max_job_size_bytes")
    def job_size(self, obj: Plan) -> str:
        return _limit(obj.max_job_size_bytes)

    @admin.display(description="Transfer / month", ordering="monthly_transfer_bytes")
    def monthly_transfer(self, obj: Plan) -> str:
        return _limit(obj.monthly_transfer_bytes)


@admin.register(PlanAssignment)
class PlanAssignmentAdmin(ServiceDeleteMixin, AuditedAdmin):
    list_display = ("user", "plan", "starts_at", "expires_at", "note")
    list_filter = ("plan", ("expires_at", admin.EmptyFieldListFilter))
    list_select_related = ("user", "plan")
    search_fields = ("user__email", "note")
    autocomplete_fields = ("user",)
    fields = ("user", "plan", "starts_at", "expires_at", "note")
    audit_additions = False  # billing.services.assign_plan writes "plan.assign"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        # Who gets the plan is fixed once assigned: to move a user, end this one and assign anew.
        return ("user",) if obj is not None else ()

    def save_model(self, request, obj: PlanAssignment, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        saved = services.assign_plan(obj.user, obj.plan, actor=request.user, starts_at=obj.starts_at,
                                     expires_at=obj.expires_at, note=obj.note)
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_service(self, actor, obj: PlanAssignment) -> None:
        accounts.delete_record(actor, obj, action="plan.unassign", user=obj.user_id, plan=obj.plan_id)


@admin.register(UsageDay)
class UsageDayAdmin(ReadOnlyAdmin):
    list_display = ("day", "user", "downloaded", "delivered", "jobs_created")
    list_filter = (("day", admin.DateFieldListFilter),)
    list_select_related = ("user",)
    search_fields = ("user__email",)
    show_full_result_count = False

    @admin.display(description="Downloaded", ordering="bytes_downloaded")
    def downloaded(self, obj: UsageDay) -> str:
        return filesizeformat(obj.bytes_downloaded)

    @admin.display(description="Delivered", ordering="bytes_delivered")
    def delivered(self, obj: UsageDay) -> str:
        return filesizeformat(obj.bytes_delivered)


@admin.register(UpgradeRequest)
class UpgradeRequestAdmin(ReadOnlyAdmin):
    """Requests from the Plans page: open ones first; answering goes through billing.services (audited)."""

    list_display = ("user", "from_plan", "plan", "status", "created_at", "handled_by", "handled_at")
    list_filter = ("status", "plan")
    list_select_related = ("user", "plan", "handled_by")
    search_fields = ("user__email",)
    actions = ("assign_plan", "decline")

    def get_ordering(self, request):
        # Open requests on top, newest first; answered ones after.
        return (Case(When(status=UpgradeRequest.Status.OPEN, then=Value(0)), default=Value(1),
                     output_field=IntegerField()), "-created_at")

    def _answer(self, request, queryset, *, assign: bool, verb: str) -> None:
        done, skipped = 0, []
        for upgrade in queryset.select_related("user", "plan"):
            if services.answer_upgrade(request.user, upgrade, assign=assign):
                done += 1
            else:
                skipped.append(f"#{upgrade.pk} was already answered")
        report(self, request, verb, done, skipped)

    @admin.action(description="Assign the requested plan")
    def assign_plan(self, request, queryset):
        self._answer(request, queryset, assign=True, verb="Plans assigned")

    @admin.action(description="Decline")
    def decline(self, request, queryset):
        self._answer(request, queryset, assign=False, verb="Declined")
