from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class DownloadsConfig(AppConfig):
    name = "downloads"
    verbose_name = "Downloads"

    def ready(self):
        from django_q.signals import post_spawn

        from accounts.offboarding import register_remover
        from billing.services import register_job_usage
        from downloads import backends, heartbeats, postprocessors
        from downloads.engine.backend import EngineBackend
        from downloads.offboarding import remove_user_jobs
        from downloads.schedules import ensure_schedules
        from downloads.usage import JobUsage

        register_job_usage(JobUsage())  # billing's quota rules read what the user's jobs use from the spine
        register_remover("downloads", remove_user_jobs)  # deleting a user stops and removes their jobs first
        backends.register(EngineBackend())
        postprocessors.register(postprocessors.ChecksumManifest())  # does nothing unless CHECKSUM_MANIFEST

        post_migrate.connect(ensure_schedules, sender=self)
        # Each django-q2 worker process beats for its cluster from a thread (see downloads/heartbeats.py).
        post_spawn.connect(heartbeats.on_worker_spawn, dispatch_uid="flotilla.worker_heartbeat")
        # Plugins and test backends named in settings register themselves on import.
        for module in settings.EXTRA_BACKEND_MODULES:
            import_module(module)
