from django.apps import AppConfig


class IndexersConfig(AppConfig):
    name = "indexers"
    verbose_name = "Indexers and search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from downloads import play_sources
        from indexers import services

        # "Play" on a search result (POST /api/v1/stream/play/ {"result": id}): streaming may not import indexers.
        play_sources.register("result", services.play_result)
        try:
            from config import nav
        except ImportError:  # the sidebar registry is newer than this app in some trees
            return
        nav.register(nav.NavEntry(key="search", label="Search", url_name="indexers:search", icon="search",
                                  order=20))
        nav.register(nav.NavEntry(key="indexers", label="Indexers", url_name="indexers:list", icon="server",
                                  order=65))
