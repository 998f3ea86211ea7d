"""The web page end to end in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium; nothing is downloaded): load the page, upload the real Charades clip, type a query, submit,
and read the moments the page renders. Skips where no browser or driver is installed (.ci/run installs
them). Set GROUNDING_SCREENSHOTS=DIR to keep a screenshot of the page."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.slow  # a real browser process per module


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("no chromium + chromedriver installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_url(grounder, tmp_path_factory):
    from grounding.api.server import ServerConfig, create_app, start_in_thread

    server, url = start_in_thread(create_app(grounder, ServerConfig(cache_dir=tmp_path_factory.mktemp("cache"))))
    yield url
    server.should_exit = True


def submit_on_page(browser, page_url: str, clip: Path, query: str, done_selector: str, top_k: int | None = None) -> None:
    """Open the page, upload ``clip``, ask ``query`` and wait until ``done_selector`` or an error is drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page_url + "/")
    WebDriverWait(browser, 20).until(ec.text_to_be_present_in_element((By.ID, "model-name"), "checkpoint"))
    browser.find_element(By.ID, "file").send_keys(str(clip))
    browser.find_element(By.ID, "queries").send_keys(query)
    if top_k is not None:
        browser.find_element(By.ID, "top_k").clear()
        browser.find_element(By.ID, "top_k").send_keys(str(top_k))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, done_selector)
                                     or d.find_element(By.ID, "error").text)


def test_upload_the_real_clip_and_read_the_rendered_moments(browser, page_url, grounder, shared):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = shared / "videos/charades_sample.mp4"
    submit_on_page(browser, page_url, clip, "a person opens the door", "li.moment", top_k=3)
    assert browser.find_element(By.ID, "error").text == ""
    shown = [[float(li.get_attribute("data-start")), float(li.get_attribute("data-end"))]
             for li in browser.find_elements(By.CSS_SELECTOR, "li.moment")]
    expected = grounder.predict("a person opens the door", grounder.encode_video(clip), top_k=3)
    assert shown == [w[:2] for w in expected["pred_relevant_windows"]]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect.bar")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, ".thumbs img")) == 12
    assert browser.find_element(By.CSS_SELECTOR, "h2").text.startswith("charades_sample")
    # clicking a moment seeks the player to its start
    browser.find_elements(By.CSS_SELECTOR, "li.moment")[-1].click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return document.querySelector('video').readyState") >= 1)
    position = browser.execute_script("return document.querySelector('video').currentTime")
    assert position == pytest.approx(shown[-1][0], abs=0.5)
    if os.environ.get("GROUNDING_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["GROUNDING_SCREENSHOTS"]) / "serve_page.png"))


def test_a_non_video_upload_shows_the_message(browser, page_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    browser.get(page_url + "/")
    browser.find_element(By.ID, "file").send_keys(str(notes))
    browser.find_element(By.ID, "queries").send_keys("door")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "error").text)
    assert "'notes.txt' is not a video file" in browser.find_element(By.ID, "error").text
