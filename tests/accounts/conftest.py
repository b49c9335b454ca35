import pytest


@pytest.fixture(autouse=True)
def _bot_check_off(settings):
    """The registration tests here post the form as a script would; the bot check (on by default, ALTCHA)
    has its own tests in test_bot_check.py, which switch it on, and the browser test solves it for real."""
    settings.BOT_CHECK = "off"
