"""`python -m config.daphne [daphne's options] config.asgi:application`: daphne's own command line, serving with
config.asgi_server.BackpressureServer (a response body waits for a slow client instead of piling up in memory).
Every place that starts the web process uses this instead of `python -m daphne`."""

from daphne.cli import CommandLineInterface  # first: it installs Twisted's asyncio reactor

from config.asgi_server import BackpressureServer


class FlotillaDaphne(CommandLineInterface):
    server_class = BackpressureServer


if __name__ == "__main__":
    FlotillaDaphne.entrypoint()
