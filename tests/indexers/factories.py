import factory

from indexers.models import Indexer


class IndexerFactory(factory.django.DjangoModelFactory):
    """A user's indexer; by default a Torznab feed on a closed port (tests pass a fake's URL)."""

    class Meta:
        model = Indexer

    owner = factory.SubFactory("tests.accounts.factories.UserFactory")
    name = factory.Sequence(lambda n: f"Indexer {n}")
    kind = "torznab"
    url = "http://127.0.0.1:9/api"
    timeout = 5.0
    request_interval = 0.0
    credentials = '{"apikey": "k"}'
