import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    """The resend throttle and DRF throttles live in the (process-wide) cache; start each test empty."""
    cache.clear()
    yield
    cache.clear()
