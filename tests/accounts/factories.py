import factory
from django.conf import settings

from accounts.models import ApiKey, User, hash_api_key


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    email_verified = True
    accepted_policy_version = factory.LazyFunction(lambda: settings.ACCEPTABLE_USE_VERSION)
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    user = factory.SubFactory(UserFactory)
    name = "test key"
    prefix = factory.LazyAttribute(lambda o: o.raw[:8])
    key_hash = factory.LazyAttribute(lambda o: hash_api_key(o.raw))

    class Params:
        raw = factory.Sequence(lambda n: f"flt_testkey{n:040d}")
