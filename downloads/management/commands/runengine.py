"""`manage.py runengine`: the built-in libtorrent engine, in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management import BaseCommand, CommandError

from downloads.engine.runner import Engine, EngineAlreadyRunning


class Command(BaseCommand):
    help = "Run the built-in libtorrent engine: claim engine jobs, download, seed, keep resume data."

    def add_arguments(self, parser):
        parser.add_argument("--name", default=settings.ENGINE_NAME,
                            help="Name the engine claims jobs under (default: ENGINE_NAME).")

    def handle(self, *args, name: str, **options):
        engine = Engine(name)
        # Stop at the next tick; run() then writes every torrent's resume data before exiting.
        signal.signal(signal.SIGTERM, engine.stop)
        signal.signal(signal.SIGINT, engine.stop)
        try:
            engine.run()
        except EngineAlreadyRunning as exc:
            raise CommandError(str(exc)) from None
