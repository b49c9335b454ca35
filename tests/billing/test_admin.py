"""Deleting plans and plan assignments in the console: audited with the operator as actor."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from billing.models import Plan, PlanAssignment
from tests.billing.factories import PlanAssignmentFactory, PlanFactory


@pytest.fixture
def console(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_deleting_plans_is_audited_and_the_default_plan_is_kept(console, admin_user):
    spare = PlanFactory(name="Spare")
    default = Plan.objects.get(is_default=True)
    response = console.post(reverse("admin:billing_plan_changelist"),
                            {"action": "delete_selected", "post": "yes", "_selected_action": [str(spare.pk)]})
    assert response.status_code == 302
    assert not Plan.objects.filter(pk=spare.pk).exists()
    row = AuditLog.objects.get(action="plan.delete", target_id=str(spare.pk))
    assert row.actor == admin_user and row.metadata["name"] == "Spare"
    assert console.get(reverse("admin:billing_plan_delete", args=[default.pk])).status_code == 403
    assert Plan.objects.filter(pk=default.pk).exists()


@pytest.mark.django_db
def test_ending_a_plan_assignment_is_audited(console, admin_user, user):
    assignment = PlanAssignmentFactory(user=user)
    url = reverse("admin:billing_planassignment_delete", args=[assignment.pk])
    assert console.post(url, {"post": "yes"}).status_code == 302
    assert not PlanAssignment.objects.exists()
    row = AuditLog.objects.get(action="plan.unassign", target_id=str(assignment.pk))
    assert row.actor == admin_user and row.metadata["user"] == user.pk
    assert not AuditLog.objects.filter(action="admin.delete").exists()
