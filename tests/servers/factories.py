import factory

from servers.models import TorrentServer


class TorrentServerFactory(factory.django.DjangoModelFactory):
    """A server record; by default pointing at a closed port (tests that need a daemon pass its fields)."""

    class Meta:
        model = TorrentServer

    owner = factory.SubFactory("tests.accounts.factories.UserFactory")
    name = factory.Sequence(lambda n: f"Server {n}")
    type = "transmission"
    transport = "http"
    host = "127.0.0.1"
    port = 9
    username = "user"
    password = "pass"
