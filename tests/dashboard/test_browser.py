"""The dashboard page in a real headless Chromium while messages flow through a real mosquitto."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import dash_messages as m
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]


def text(browser, selector: str) -> str | None:
    return browser.evaluate(f"(document.querySelector({selector!r}) || {{}}).textContent")


def canvas_alpha(browser, device: str, x: float, y: float) -> int:
    """Alpha of the live canvas pixel at frame-normalized (x, y)."""
    return browser.evaluate(
        f"(() => {{ const c = document.querySelector('.cam[data-device=\"{device}\"] canvas');"
        f" return c.getContext('2d').getImageData(Math.round({x} * c.width), Math.round({y} * c.height), 1, 1).data[3]; }})()")


def test_live_values_boxes_with_sigma_bands_aggregates_and_alerts_appear(dashboard, publisher, chromium, tmp_path):
    chromium.goto(dashboard.url)
    chromium.wait_for("document.querySelector('#stream').textContent === 'page: live'")
    assert text(chromium, "#broker").startswith("broker: mqtt://127.0.0.1:")

    # big sigma on the circle so its band is wide: box_sigma = 0.25 * (w, h, w, h)
    circle = m.detection("circle", 0, (0.1, 0.2, 0.3, 0.6), 0.25)
    square = m.detection("square", 1, (0.55, 0.3, 0.9, 0.8), 0.02)
    publisher.send([m.status("cam-a"), m.metrics("cam-a", 9.5, 120, 3, 2),
                    m.detections("cam-a", 7, [circle, square]),
                    m.status("cam-b"), m.status("cam-b", "offline"),
                    m.aggregate("cam-a", "circle", 0, 1000.0, 4, 0.10),
                    m.aggregate("cam-a", "circle", 0, 1005.0, 6, 0.12),
                    m.aggregate("cam-b", "square", 1, 1000.0, 5, 0.30),
                    m.alert("cam-a", "square", message="square count 12 > 10 on cam-a"),
                    m.health("cam-a", 1000.0, 20), m.stats(1000.0, 2, 3)])

    row = 'tr[data-device="cam-a"] td.'
    chromium.wait_for(f"(document.querySelector('{row}fps') || {{}}).textContent === '9.5'")
    assert text(chromium, row + "state") == "online"
    assert text(chromium, 'tr[data-device="cam-b"] td.state') == "offline"
    assert text(chromium, row + "dropped") == "3"
    assert text(chromium, row + "outbox") == "2 queued / 0 dropped"
    assert text(chromium, row + "seq") == "7"
    chromium.wait_for("document.querySelectorAll('.cam[data-device=\"cam-a\"] li').length === 2")
    labels = chromium.evaluate("[...document.querySelectorAll('.cam[data-device=\"cam-a\"] li')].map(e => e.dataset.label)")
    assert labels == ["circle", "square"]
    assert "seq 7 · 640×360 · 2 boxes" in text(chromium, '.cam[data-device="cam-a"] .meta')

    # The circle's left edge x1 = 0.1 has sigma sqrt(0.05^2 + 0.025^2) ~ 0.056: the band covers x = 0.07
    # (outside the mean box) and x = 0.13 (inside it), but not x = 0.02; the square's band is tiny.
    y = 0.4
    assert canvas_alpha(chromium, "cam-a", 0.07, y) > 0
    assert canvas_alpha(chromium, "cam-a", 0.13, y) > 0
    assert canvas_alpha(chromium, "cam-a", 0.02, y) == 0
    assert canvas_alpha(chromium, "cam-a", 0.52, 0.55) == 0

    chromium.wait_for("document.querySelector('#count-aggregated-events').textContent === '15'")
    assert text(chromium, 'tr[data-class="circle"] td.count') == "10"
    assert text(chromium, 'tr[data-class="square"] td.count') == "5"
    assert text(chromium, 'tr[data-class="circle"] td.windows') == "2"
    assert "15 detections in 3 windows" in text(chromium, "#sigma-stats")
    assert "square count 12 > 10 on cam-a" in text(chromium, "#alerts")
    assert text(chromium, "#count-alerts") == "1"
    assert text(chromium, "#count-dead") == "2 / 3"
    assert text(chromium, row + "job") == "4.0 frames/s (20 frames, state online)"

    # live updates keep coming: a new metrics message changes the row
    publisher.send([m.metrics("cam-a", 12.25, 200, 4, 0)])
    chromium.wait_for(f"document.querySelector('{row}fps').textContent === '12.3'")
    assert text(chromium, row + "processed") == "200"

    shot = chromium.screenshot(tmp_path / "dashboard.png")
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("SIGMAWATCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "dashboard-test.png")


def test_the_page_loads_nothing_from_the_network(dashboard, chromium):
    chromium.goto(dashboard.url)
    chromium.wait_for("document.querySelector('#stream').textContent === 'page: live'")
    urls = chromium.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert urls, "the page loaded no resources at all"
    assert all(u.startswith(dashboard.url.rstrip("/")) for u in urls), urls
