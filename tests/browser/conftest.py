"""Browser tests: real daphne + qcluster (tests/procs.py) driven by Debian's Chromium through Playwright.

Chromium comes from the system package (/usr/bin/chromium); we never download a browser. The processes
run with DEBUG off, like production, so their static files come from a collectstatic run made once per
session and linked into each test's DATA_DIR.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import global_settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import procs
from tests.servers import daemons

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
# The subprocesses load the loopback test backend, so a test can drive a job through its whole life. The
# registration page keeps its default bot check (ALTCHA), which Chromium really solves; at a low cost.
EXTRA_ENV = {"EXTRA_BACKEND_MODULES": "tests.fakes.loopback_backend", "LOG_LEVEL": "WARNING",
             "BOT_CHECK": "altcha", "ALTCHA_COST": "10"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _hashers_the_server_knows(settings):
    """Users made here log in through daphne, whose settings only accept the real password hashers."""
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory) -> Path:
    """STATIC_ROOT built once: with DEBUG off the manifest storage needs collectstatic's manifest."""
    data_dir = tmp_path_factory.mktemp("static-data")
    env = procs.process_env(data_dir)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=procs.ROOT, env=env,
                   check=True)
    return data_dir / "static"


# expect() has its own deadline (5 s by default), apart from the context's action timeout: a deadline
# for a loaded machine, never a speed check.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="package")
def browser(request) -> Iterator[Browser]:
    # Only for tests in this package: imported into another one, it lives as long as that package's tests,
    # which the suite's ordering spreads out, and its running event loop breaks asyncio.run() in between.
    assert Path(request.node.path).is_relative_to(Path(__file__).parent), \
        f"browser tests belong in tests/browser/, not {request.node.path}"
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # synchronous and sequential, so Django's async-safety guard would be a false alarm here. Package
    # scope: the guard is back on (and Playwright gone) before tests outside tests/browser/ run.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def live_server_url(transactional_db, tmp_path, collected_static) -> Iterator[str]:
    """Base URL of a real daphne (with a qcluster beside it) sharing the test database."""
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    env = procs.process_env(tmp_path, **EXTRA_ENV)
    with procs.qcluster(env, tmp_path), procs.daphne(env, tmp_path) as url:
        yield url


@pytest.fixture
def page(browser, live_server_url, request, tmp_path) -> Iterator[Page]:
    """A fresh browser context per test; JS errors are collected, and a failure leaves a screenshot + logs."""
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    # Uncaught exceptions fail the tests that check `page.js_errors`; console errors are kept for the report.
    page.js_errors = []
    page.console_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in tmp_path.glob("*.log"))
        print(f"\nscreenshot: {shot}\nURL: {page.url}\nJS errors: {page.js_errors}")
        print(f"console errors: {page.console_errors}\n{logs}")
    context.close()


# Real daemons on 127.0.0.1, module-scoped, started by the same code as tests/servers' (tests/servers/daemons.py).
transmission = daemons.module_fixture("transmission")
qbittorrent = daemons.module_fixture("qbittorrent")


def log_in(page: Page, email: str, password: str = "correct horse battery staple") -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
