from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("servers", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="torrentserver",
            name="error_since",
            field=models.DateTimeField(blank=True, null=True,
                                       help_text="In error since (the first failure of the current streak)."),
        ),
    ]
