from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0002_default_plan"),
    ]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="max_concurrent_streams",
            field=models.PositiveIntegerField(
                default=10, help_text="Streams (players) a user may have open at once; 0 = unlimited."),
        ),
    ]
