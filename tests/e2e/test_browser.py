"""End to end in a real browser: Playwright drives the system Chromium through the
service's pages: upload a sample trace, wait for its job, open the report, run SQL,
delete the dataset."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from replay.database import Limits
from replay.serve.config import ServeConfig
from tests.conftest import SAMPLES
from tests.serve_helpers import SMALL_SWEEP

CHROMIUM = Path("/usr/bin/chromium")
#: Chromium without a sandbox (root in a container), a GPU, or any network of its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
THP = SAMPLES / "ftrace-thp.dat"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium (Debian package `chromium`; .ci/run installs it)")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The app under uvicorn in a thread, on a free port."""
    import uvicorn

    from replay.serve.app import create_app

    app = create_app(ServeConfig(tmp_path_factory.mktemp("e2e"), jobs=1,
                                 sql_limits=Limits(10.0, 1000), report=SMALL_SWEEP))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_upload_follow_report_and_query(browser, base_url):
    from playwright.sync_api import expect

    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(base_url + "/")
    expect(page.locator("#datasets")).to_contain_text("No datasets yet")
    page.set_input_files("#trace", str(THP))
    page.click("#upload button[type=submit]")
    row = page.locator("#jobs tr.job").first
    expect(row.locator(".state")).to_have_text("done", timeout=300_000)
    expect(row.locator("progress")).to_have_js_property("value", 1)
    link = row.locator(".dataset a")
    dataset = link.inner_text()
    assert dataset.startswith("ftrace-thp.dat-")
    # the datasets table caught up without a reload
    expect(page.locator(f'#datasets tr[data-dataset="{dataset}"]')).to_contain_text("23,864")
    link.click()
    expect(page).to_have_url(re.compile(rf"/datasets/{re.escape(dataset)}$"))
    expect(page.locator("p.facts")).to_contain_text("23,864 events")
    report = page.frame_locator("#report")
    expect(report.locator("body")).to_contain_text("max order")
    # the SQL console: a result table, then DuckDB's hint under an error
    page.fill("#sql textarea", 'SELECT "order", count(*) AS n FROM allocs '
                               "GROUP BY ALL ORDER BY 1")
    page.click("#sql button[type=submit]")
    expect(page.locator("#result table tbody tr").first).to_contain_text("7022")
    expect(page.locator("#result thead")).to_contain_text("order")
    page.fill("#sql textarea", "SELECT * FROM evnts")
    page.click("#sql button[type=submit]")
    expect(page.locator("#sql-error")).to_contain_text('Did you mean "events"')
    # a named query from its form
    page.click("details summary")
    page.locator("form.named button").first.click()
    expect(page.locator("#result table")).to_be_visible()
    # nothing but the service itself was asked for
    assert requests and all(u.startswith(base_url) for u in requests), requests
    if os.environ.get("REPLAY_SCREENSHOT"):
        page.fill("#sql textarea", 'SELECT "order", count(*) AS requests, '
                                   'sum(1 << "order") AS pages, count(*) FILTER '
                                   "(free_seq IS NULL) AS never_freed\nFROM allocs "
                                   "GROUP BY ALL ORDER BY 1")
        page.click("#sql button[type=submit]")
        expect(page.locator("#result table")).to_be_visible()
        page.set_viewport_size({"width": 1280, "height": 1400})
        page.screenshot(path=os.environ["REPLAY_SCREENSHOT"], full_page=False)
    # delete it from the list
    page.goto(base_url + "/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f'#datasets button.delete[data-dataset="{dataset}"]')
    expect(page.locator(f'#datasets tr[data-dataset="{dataset}"]')).to_have_count(0)
    page.reload()
    expect(page.locator("#datasets")).to_contain_text("No datasets yet")
    page.close()
