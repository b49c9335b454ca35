"""The Seedr panel in real Chromium against real daphne + qcluster and the fake Seedr: connect by device
code (code, link, waiting state), add a batch, watch it run to the end live, see the account widget.
(Seedr's browser test lives here, beside the browser fixtures.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from downloads.models import Job, Status
from tests import procs
from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import log_in
from tests.fakes.seedr_fake import FakeSeedr

SEEDR_EMAIL = "dana@seedr.test"


@pytest.fixture
def fake() -> Iterator[FakeSeedr]:
    fake = FakeSeedr(progress_step=50, device_interval=1).serve()
    fake.add_account(SEEDR_EMAIL, "pw", space_max=30_000_000)
    yield fake
    fake.stop()


@pytest.fixture
def seedr_page(browser, fake, transactional_db, tmp_path, collected_static, settings) -> Iterator[Page]:
    (tmp_path / "static").symlink_to(collected_static, target_is_directory=True)
    env = procs.process_env(tmp_path, SEEDR_API_URL=fake.api_url, SEEDR_OAUTH_URL=fake.oauth_url,
                            SEEDR_TEMP_DIR=str(tmp_path / "seedr-tmp"), SYNC_INTERVAL="0.3", LOG_LEVEL="WARNING")
    with procs.qcluster(env, tmp_path), procs.daphne(env, tmp_path) as url:
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.js_errors = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        try:
            yield page
        finally:
            context.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_connect_by_device_code_then_a_batch_runs_live(seedr_page: Page, fake):
    user = UserFactory(email="dana@example.com")
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=5))
    page = seedr_page
    log_in(page, user.email)
    page.get_by_role("link", name="Seedr").click()
    expect(page.get_by_role("heading", name="Seedr", exact=True)).to_be_visible()

    page.get_by_role("button", name="Connect with a code").click()
    code = page.locator("#seedr-user-code")
    expect(code).to_have_text(re.compile(r"^[0-9A-F]{4}-\d{4}$"))
    expect(page.locator("#seedr-verification")).to_have_attribute("href", f"{fake.base_url}/devices")
    expect(page.locator("#seedr-device-state")).to_contain_text("Waiting for you to approve")
    fake.approve(code.inner_text(), SEEDR_EMAIL)
    expect(page.locator("#seedr-connected")).to_contain_text(f"Connected as {SEEDR_EMAIL}")
    expect(page.locator('[data-meter="space"] [data-meter-text]')).to_contain_text("of 28.6 MiB")

    page.fill("#seedr-add-batch textarea", "\n".join(
        f"magnet:?xt=urn:btih:{n:040x}&dn=Clip+{n}" for n in (1, 2)) + "\nnot a magnet")
    page.get_by_role("button", name="Add batch").click()
    expect(page.locator("#seedr-add-errors")).to_contain_text("Line 3")  # the bad line, reported by number
    done = page.locator("#seedr-done-rows tr[data-status='completed']")
    expect(done).to_have_count(2, timeout=60_000)
    expect(page.locator("#seedr-queue-rows")).to_contain_text("Nothing queued.")
    expect(page.locator("#seedr-batches")).to_contain_text("2 of 2 done, 0 remaining")
    assert set(Job.objects.values_list("status", flat=True)) == {Status.COMPLETED}
    assert fake.account(SEEDR_EMAIL).is_empty()
    assert page.js_errors == []
