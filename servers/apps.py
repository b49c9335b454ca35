from django.apps import AppConfig


class ServersConfig(AppConfig):
    name = "servers"
    verbose_name = "Torrent servers"

    def ready(self):
        from downloads import backends
        from servers.backend import ServerBackend

        backends.register(ServerBackend())
