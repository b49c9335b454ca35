"""The `admin` role grants the operator console through one group, "Operators".

Django's admin shows a model only to users holding its permissions; a role-admin who is not a superuser
would otherwise get "no permission" everywhere. The group holds every permission of Flotilla's own apps
plus the task queue (django_q) and the login lockouts (axes) — never `auth` (groups and permissions), so
an operator cannot grant themselves more. Each ModelAdmin still narrows what it allows (read-only rows,
no adding servers, …).

Kept in step by: migration accounts/0002 (creates the group, adds existing role-admins), a post_migrate
hook (new models of later migrations join the group), and `accounts.services.set_role` (granting or
revoking the role adds or removes the membership; `User.save` derives `is_staff`).
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.models import Group

OPERATORS_GROUP = "Operators"

# App labels whose model permissions the group holds. Labels of apps not installed are simply absent.
OPERATOR_APPS = (
    "accounts", "billing", "downloads", "seedr", "servers", "indexers", "streaming", "audiobooks",
    "django_q", "axes",
)


def sync_operators_group(group_model, permission_model):
    """Create the group if needed and give it exactly the operator permissions. Takes the models so the
    data migration can pass its historical ones."""
    group, _ = group_model.objects.get_or_create(name=OPERATORS_GROUP)
    wanted = permission_model.objects.filter(content_type__app_label__in=OPERATOR_APPS)
    group.permissions.set(wanted)
    return group


def sync_user_access(user) -> None:
    """Add the user to Operators if their role is admin, remove them otherwise (is_staff follows the role in
    User.save). A superuser needs no group, but membership does no harm and keeps the list honest."""
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    if user.role == user.Role.ADMIN:
        user.groups.add(group)
    else:
        user.groups.remove(group)


def on_post_migrate(sender, apps=global_apps, **kwargs) -> None:
    """After every migrate (auth has created the permissions of new models by then), re-sync the group.
    `flush` (and the test runner's flush between transactional tests) sends no `apps`: the live ones."""
    try:
        group_model = apps.get_model("auth", "Group")
        permission_model = apps.get_model("auth", "Permission")
    except LookupError:  # a migrate that ran before auth existed
        return
    sync_operators_group(group_model, permission_model)
