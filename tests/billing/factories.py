import factory

from billing.models import Plan, PlanAssignment

GIB = 1024**3


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    name = factory.Sequence(lambda n: f"Plan {n}")
    max_active_jobs = 3
    max_storage_bytes = 10 * GIB
    max_job_size_bytes = 5 * GIB
    monthly_transfer_bytes = 100 * GIB
    retention_days = 7
    allowed_backends = factory.LazyFunction(lambda: ["engine", "seedr", "server", "loopback"])


class PlanAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlanAssignment

    user = factory.SubFactory("tests.accounts.factories.UserFactory")
    plan = factory.SubFactory(PlanFactory)
