import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from tests.test_admin import CHANGELISTS, console_rows, admin_client  # noqa

@pytest.mark.django_db
def test_measure(admin_client, console_rows):
    for name in CHANGELISTS:
        with CaptureQueriesContext(connection) as q:
            admin_client.get(reverse(f"admin:{name}_changelist"))
        print(name, len(q))
        if name in ("downloads_job", "accounts_user", "downloads_jobevent"):
            for x in q: print("   ", x["sql"][:300])
