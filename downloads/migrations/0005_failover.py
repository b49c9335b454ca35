"""Fail-over between backends: the job's trail and stall clock, and the users' and plans' policies."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import downloads.models

MINUTES = [django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(10080)]


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0001_initial"),  # Plan
        ("downloads", "0004_qbittorrent_api"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="failover_from",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="job",
            name="progress_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="BackendPolicy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("backends", models.JSONField(blank=True, default=list,
                                              help_text='In order, e.g. ["seedr", "server", "engine"].')),
                ("triggers", models.JSONField(
                    blank=True, default=downloads.models.all_triggers,
                    help_text="Some of: seedr_queue_full, seedr_quota_exceeded, seedr_size_limit, stalled, "
                              "backend_offline, retries_exhausted.")),
                ("stall_minutes", models.PositiveIntegerField(
                    default=30, validators=MINUTES,
                    help_text="Minutes with no seeder and no new byte before a job counts as stalled.")),
                ("offline_grace_minutes", models.PositiveIntegerField(
                    default=15, validators=MINUTES,
                    help_text="Minutes a backend may be offline before its jobs move on.")),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("plan", models.OneToOneField(blank=True, help_text="The default of this plan's users.", null=True,
                                              on_delete=django.db.models.deletion.CASCADE,
                                              related_name="backend_policy", to="billing.plan")),
                ("user", models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                              related_name="backend_policy", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "verbose_name_plural": "backend policies",
                "constraints": [models.CheckConstraint(
                    condition=models.Q(models.Q(("plan__isnull", False), ("user__isnull", True)),
                                       models.Q(("plan__isnull", True), ("user__isnull", False)), _connector="OR"),
                    name="backendpolicy_user_or_plan")],
            },
        ),
    ]
