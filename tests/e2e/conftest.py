"""Browser tests: Debian's chromium driven by Playwright against a live server on a free port.

Playwright cannot download its own browser here, so it launches the system chromium. Without
chromium the tests are skipped, unless HZ_REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.live import ThreadServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 860}}
PASSWORD = "huizhen-demo"


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("HZ_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def demo(app):
    """The demo accounts (seed-demo), by the local part of their email, as user ids."""
    from app.accounts.demo import seed_demo
    from app.accounts.models import User
    from app.extensions import db

    with app.app_context():
        seed_demo()
        db.session.commit()
        rows = db.session.execute(sa.select(User.email, User.id)).all()
    return {email.split("@")[0]: uid for email, uid in rows}


@pytest.fixture
def live(app, demo):
    server = ThreadServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def open_as(browser, live):
    """Open a logged-in page for a demo user: ``open_as("gp", phone=True)``."""
    contexts = []

    def open_page(who: str, *, phone: bool = False):
        context = browser.new_context(base_url=live.url, locale="zh-CN", accept_downloads=True,
                                      **(PHONE if phone else DESKTOP))
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        # Script errors show in the test's output, so a failing step says why.
        page.on("pageerror", lambda exc, who=who: print(f"[{who}] page error: {exc}"))
        page.on("console", lambda msg, who=who: msg.type == "error" and print(f"[{who}] console: {msg.text}"))
        page.goto("/login")
        page.fill("input[name=email]", f"{who}@demo.huizhen")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live.url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def _cjk_fonts() -> bool:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    out = subprocess.run([fc_list], capture_output=True, text=True, check=False).stdout  # noqa: S603
    return "noto sans cjk" in out.lower()


def screenshot(page, name: str) -> None:
    """Save a screenshot for the README (docs/screenshots/<name>.png), only when HZ_SCREENSHOTS=1.

    The committed screenshots are rewritten on request only, and never without the CJK fonts
    (fonts-noto-cjk): without them every Chinese character would be an empty box.
    """
    if os.environ.get("HZ_SCREENSHOTS") != "1":
        return
    if not _cjk_fonts():
        pytest.fail("HZ_SCREENSHOTS=1 needs the Noto Sans CJK fonts (apt-get install fonts-noto-cjk)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
