"""The Airflow UI in a real browser, after the shared end-to-end run on real clips: Debian's
headless Chromium driven through its chromedriver by Selenium, as a user would look at a run.

Screenshots go to ``.local/ui-screenshots/`` (``UI_SCREENSHOTS`` overrides). Without Chromium
and chromedriver (``apt-get install chromium chromium-driver``; ``.ci/run`` installs them)
these tests are skipped, and pytest's summary says why; where the browser is required
(``REQUIRE_BROWSER=1``, as ``.ci/run`` sets wherever it can install it) they fail instead, so CI
is never green without having looked at the UI.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(os.environ.get("UI_SCREENSHOTS", Path(__file__).resolve().parents[2] / ".local" / "ui-screenshots"))
# headless, as root, and quiet on a closed network (without the background-networking flags
# Chromium keeps trying Google's hosts)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)


SUMMARIZED_LINE = re.compile(r'summarized \S+  transcript s3://\S+\.out  summary s3://\S+\.summary\.json  "[^"]+"')


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        missing = "no Chromium here: apt-get install chromium chromium-driver (as .ci/run does) to run the UI tests"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing} (REQUIRE_BROWSER=1)")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def run_page(stack, outcome):
    """The URL of a page of the shared run in the UI."""
    base = stack.settings.url(stack.settings.ports.airflow)
    run = urllib.parse.quote(outcome["run_id"], safe="")
    return lambda path="": f"{base}/dags/audio_transcription/runs/{run}{path}"


def page_text(browser, url: str, expected: str, screenshot: str, timeout: float = 60) -> str:
    """Open ``url``, wait until the page shows ``expected``, save a screenshot; the page's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    text = ""

    def shows_it(driver) -> bool:
        nonlocal text
        text = driver.find_element(By.TAG_NAME, "body").text
        return expected in text

    try:
        WebDriverWait(browser, timeout, poll_frequency=0.5).until(shows_it)
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))
    return text


def test_the_runs_grid_names_each_mapped_batch(browser, run_page):
    text = page_text(browser, run_page(), "batch 1 of 1", "run-grid")
    rows = re.findall(r"^(transcribe\.\w+)\nbatch (\d+) of (\d+)$", text, re.MULTILINE)
    assert sorted(rows) == [
        ("transcribe.await_transcripts", "1", "1"),
        ("transcribe.submit", "1", "1"),
        ("transcribe.summarise", "1", "1"),
    ], text


def test_a_batchs_await_transcripts_log_shows_the_triggers_progress(browser, run_page):
    text = page_text(
        browser, run_page("/tasks/transcribe.await_transcripts/mapped/0"), "files settled", "await-transcripts-log"
    )
    assert "batch 1 of 1" in text
    assert re.search(r"batches/1\.json: \d of 6 files settled \(", text), text


def test_report_runs_log_shows_a_line_per_file_with_its_transcript_and_summary(browser, run_page, outcome):
    text = page_text(browser, run_page("/tasks/report_run"), "Run manifest:", "report-run-log")
    for row in outcome["rows"].values():
        (line,) = [line for line in text.splitlines() if f" {row.uri} " in f"{line} "]
        if row.status == "summarized":
            assert SUMMARIZED_LINE.search(line), line
        else:
            assert f"failed     {row.uri}  reason: " in line, line
