from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedule(**_kwargs) -> None:
    from django_q.models import Schedule

    # A standalone book whose worker died is enqueued again once its lease expired.
    Schedule.objects.update_or_create(name="flotilla.audiobooks_sweep", defaults={
        "func": "audiobooks.tasks.sweep", "schedule_type": Schedule.MINUTES, "minutes": 5, "repeats": -1})
    # Tracker compliance: seeding ledgers from the clients, then the accounts (unsatisfied count, ratio).
    Schedule.objects.update_or_create(name="flotilla.tracker_compliance", defaults={
        "func": "audiobooks.compliance.tasks.sweep", "schedule_type": Schedule.MINUTES, "minutes": 5,
        "repeats": -1})


class AudiobooksConfig(AppConfig):
    """Audiobooks: merge a finished download into one tagged M4B and publish it into the user's library."""

    name = "audiobooks"
    verbose_name = "Audiobooks"

    def ready(self):
        from audiobooks.compliance import admin as _compliance_admin  # noqa: F401 - registers its admin
        from audiobooks.compliance.guard import TrackerGuard
        from audiobooks.processor import AudiobookProcessor
        from audiobooks.services import adopt_grab
        from downloads import backends, postprocessors
        from indexers import services as indexers

        postprocessors.register(AudiobookProcessor())
        indexers.on_grab(adopt_grab)
        backends.register_guard("tracker_compliance", TrackerGuard())
        post_migrate.connect(ensure_schedule, sender=self)
        _register_nav()


def _register_nav() -> None:
    """The sidebar entry (config/nav.py); absent in trees older than the sidebar registry."""
    try:
        from config import nav
    except ImportError:
        return
    nav.register(nav.NavEntry(key="audiobooks", label="Audiobooks", url_name="audiobooks:list", icon="headphones",
                              order=40))
