from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedule(**_kwargs) -> None:
    from django_q.models import Schedule

    # A standalone book whose worker died is enqueued again once its lease expired.
    Schedule.objects.update_or_create(name="flotilla.audiobooks_sweep", defaults={
        "func": "audiobooks.tasks.sweep", "schedule_type": Schedule.MINUTES, "minutes": 5, "repeats": -1})


class AudiobooksConfig(AppConfig):
    """Audiobooks: merge a finished download into one tagged M4B and publish it into the user's library."""

    name = "audiobooks"
    verbose_name = "Audiobooks"

    def ready(self):
        from audiobooks.processor import AudiobookProcessor
        from downloads import postprocessors

        postprocessors.register(AudiobookProcessor())
        post_migrate.connect(ensure_schedule, sender=self)
