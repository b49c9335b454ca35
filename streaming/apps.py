from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """Everything that sends bytes to a user: signed links, Range, zips (later: streaming while downloading)."""

    name = "streaming"
    verbose_name = "Streaming"
