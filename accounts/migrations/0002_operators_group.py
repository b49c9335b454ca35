"""The Operators group: what the `admin` role grants in the console (see accounts/roles.py)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import OPERATORS_GROUP, sync_operators_group


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create them now so the group
    # gets them on this very run, with the historical models.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)  # historical app stubs have none
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    group = sync_operators_group(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))
    User = apps.get_model("accounts", "User")
    group.user_set.add(*User.objects.filter(role="admin"))
    # Role-admins had is_staff already (User.save derives it); make sure of it for rows written otherwise.
    User.objects.filter(role="admin").update(is_staff=True)


def drop_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=OPERATORS_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("billing", "0002_default_plan"),
        ("downloads", "0003_lease"),
        ("seedr", "0001_initial"),
        ("servers", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_group, drop_group)]
