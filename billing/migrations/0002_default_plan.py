from django.db import migrations

GIB = 1024**3


def create_default_plan(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    if not Plan.objects.filter(is_default=True).exists():
        Plan.objects.create(
            name="Free",
            is_default=True,
            max_active_jobs=3,
            max_storage_bytes=50 * GIB,
            max_job_size_bytes=20 * GIB,
            monthly_transfer_bytes=500 * GIB,
            retention_days=14,
            allowed_backends=["engine", "seedr", "server"],
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_default_plan, migrations.RunPython.noop)]
