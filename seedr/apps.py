from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class SeedrConfig(AppConfig):
    name = "seedr"
    verbose_name = "Seedr"

    def ready(self):
        from downloads import backends
        from seedr import checks  # noqa: F401 - registers the settings checks
        from seedr.backend import SeedrBackend
        from seedr.tasks import ensure_schedules

        post_migrate.connect(ensure_schedules, sender=self)
        if settings.SEEDR_ENABLED:
            backends.register(SeedrBackend())
