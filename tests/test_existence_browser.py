"""The "probably not in this video" verdict as a browser draws it: in the HTML report (a file, no server)
and on the web page (the real clip through the server), both drawn by ``static/render.js``."""

import pytest

from tests.test_serve_browser import browser, page_url, submit_on_page  # noqa: F401  (module fixtures: one browser, one server)

pytestmark = pytest.mark.slow


def test_the_report_shows_the_verdict_below_the_threshold(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    from grounding.api.report import write_report

    def result(query, p):
        return {"query": query, "vid": "v", "duration": 20.0, "pred_relevant_windows": [[2.0, 6.0, 0.5]],
                "pred_saliency_scores": [0.1] * 10, "pred_in_video": p}

    videos = [{"vid": "v", "duration": 20.0, "clip_len": 2.0, "thumbnails": [], "video_src": None,
               "results": [result("the dog jumps", 0.12), result("a person opens the door", 0.93),
                           result("an old model's answer", None)]}]
    path = write_report(tmp_path / "report.html", videos)
    browser.get(path.as_uri())
    sections = browser.find_elements(By.CSS_SELECTOR, "section.query")
    notes = [s.find_elements(By.CSS_SELECTOR, ".in-video") for s in sections]
    assert notes[0][0].text == "probably not in this video (p = 0.12)" and "absent" in notes[0][0].get_attribute("class")
    assert notes[1][0].text == "in this video (p = 0.93)" and "absent" not in notes[1][0].get_attribute("class")
    assert notes[2] == []  # no probability, no verdict


def test_the_page_shows_the_models_probability(browser, page_url, grounder, shared):  # noqa: F811
    from selenium.webdriver.common.by import By

    clip = shared / "videos/charades_sample.mp4"
    submit_on_page(browser, page_url, clip, "a person opens the door", ".in-video")
    expected = grounder.predict("a person opens the door", grounder.encode_video(clip))["pred_in_video"]
    shown = browser.find_element(By.CSS_SELECTOR, ".in-video")
    assert float(shown.get_attribute("data-p")) == pytest.approx(expected)
    assert ("probably not in this video" in shown.text) == (expected < 0.5)
