"""What someone watching the dashboard needs, read out of a real headless Chromium while real messages go through
a real mosquitto: a time axis on the counts chart, a σ̄ histogram of the recent windows only, a 'last seen' per
device that moves, devices that left going stale and then away, a favicon, and a page that fits a phone."""
from __future__ import annotations

import os
import re
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import dash_messages as m
import pytest
from dash_helpers import RunningDashboard

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]

ZONE = "Asia/Kolkata"                               # UTC+05:30 all year: labels must be in the browser's zone
ZONE_OFFSET = timezone(timedelta(hours=5, minutes=30))


def hms(t: float) -> str:
    return datetime.fromtimestamp(t, ZONE_OFFSET).strftime("%H:%M:%S")


def hm(t: float) -> str:
    return datetime.fromtimestamp(t, ZONE_OFFSET).strftime("%H:%M")


def open_page(browser, url: str, zone: str = ZONE) -> None:
    browser.call("Emulation.setTimezoneOverride", session=True, timezoneId=zone)
    browser.goto(url)
    browser.wait_for("document.querySelector('#stream').textContent === 'page: live'")


def text(browser, selector: str) -> str | None:
    return browser.evaluate(f"(document.querySelector({selector!r}) || {{}}).textContent")


def keep_screenshot(browser, tmp_path: Path, name: str) -> Path:
    shot = browser.screenshot(tmp_path / name)
    keep = os.environ.get("SIGMAWATCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / name)
    return shot


COUNTS_CHART = """(() => ({
  ticks: [...document.querySelectorAll('#counts-chart text.x-tick')].map((e) => ({
    text: e.textContent, x: Number(e.getAttribute('x'))})),
  points: [...document.querySelectorAll('#counts-chart circle.pt')].map((e) => ({
    label: e.dataset.label, t: Number(e.dataset.t), v: Number(e.dataset.v), x: Number(e.getAttribute('cx'))})),
  ymax: [...document.querySelectorAll('#counts-chart text.y-tick')].map((e) => e.textContent),
}))()"""


def test_the_counts_chart_has_a_time_axis_labelled_with_the_published_window_times(dashboard, publisher, chromium):
    t0 = (int(time.time()) // 60) * 60 - 120          # a round minute two minutes ago; six 10 s windows from it
    open_page(chromium, dashboard.url)
    counts_a = [3, 5, 2, 7, 4, 6]
    msgs = [m.aggregate("cam-a", "circle", 0, t0 + 10 * k, n, 0.1, length=10.0) for k, n in enumerate(counts_a)]
    msgs += [m.aggregate("cam-b", "circle", 0, t0 + 10 * k, 1, 0.1, length=10.0) for k in range(6)]
    # window 3 of cam-a revised by late frames (7 -> 9), then its first revision replayed: the highest stays
    msgs += [m.aggregate("cam-a", "circle", 0, t0 + 30, 9, 0.1, length=10.0, revision=1),
             m.aggregate("cam-a", "circle", 0, t0 + 30, 7, 0.1, length=10.0, revision=0)]
    msgs += [m.aggregate("cam-a", "square", 1, t0 + 20, 12, 0.2, length=10.0)]
    # a window two hours older (a retained result of a device gone long ago): outside the chart's 30 min
    msgs += [m.aggregate("cam-old", "circle", 0, t0 - 7200, 40, 0.1, length=10.0)]
    publisher.send(msgs)
    chromium.wait_for("document.querySelector('#count-aggregates').textContent === '14'")
    chromium.wait_for("document.querySelectorAll('#counts-chart circle.pt').length === 7")
    chart = chromium.evaluate(COUNTS_CHART)

    # the axis: one label per window start, in the browser's time zone, at the x of that window's points
    assert [t["text"] for t in chart["ticks"]] == [hms(t0 + 10 * k) for k in range(6)]
    circles = {p["t"]: p for p in chart["points"] if p["label"] == "circle"}
    assert sorted(circles) == [t0 + 10 * k for k in range(6)]
    for k, tick in enumerate(chart["ticks"]):
        assert tick["x"] == pytest.approx(circles[t0 + 10 * k]["x"], abs=0.01)
    xs = [t["x"] for t in chart["ticks"]]
    for k in range(6):                                 # evenly spaced: the axis is linear in time
        assert xs[k] - xs[0] == pytest.approx(k * (xs[5] - xs[0]) / 5, abs=0.01)
    # the values: summed over devices, the revised window at its highest revision, nothing of the old window
    expected = [n + 1 for n in counts_a]
    expected[3] = 9 + 1
    assert [circles[t0 + 10 * k]["v"] for k in range(6)] == expected
    squares = [p for p in chart["points"] if p["label"] == "square"]
    assert [(p["t"], p["v"]) for p in squares] == [(t0 + 20, 12)]
    assert chart["ymax"][0] == "12"
    assert "last 30 min of windows" in text(chromium, "#counts-span")

    # a browser elsewhere on Earth labels the same windows with its own clock times
    open_page(chromium, dashboard.url, zone="America/Los_Angeles")
    chromium.wait_for("document.querySelectorAll('#counts-chart circle.pt').length === 7")
    shifted = [t["text"] for t in chromium.evaluate(COUNTS_CHART)["ticks"]]
    la = ZoneInfo("America/Los_Angeles")
    assert shifted == [datetime.fromtimestamp(t0 + 10 * k, la).strftime("%H:%M:%S") for k in range(6)]
    assert shifted != [hms(t0 + 10 * k) for k in range(6)]


HISTOGRAM = """(() => [...document.querySelectorAll('#sigma-chart rect.bin')].map((e) => ({
  lo: Number(e.dataset.lo), hi: Number(e.dataset.hi), count: Number(e.dataset.count)})))()"""


def bin_counts(bins: list[dict], sigmas: dict[float, int]) -> None:
    """Every bin holds exactly the detections of the windows whose σ̄ falls into it."""
    for b in bins:
        want = sum(n for s, n in sigmas.items() if b["lo"] <= s < b["hi"])
        assert b["count"] == want, (b, sigmas)


def test_the_sigma_histogram_shows_only_the_recent_windows(broker, publisher, chromium):
    dash = RunningDashboard(broker, recent_s=60.0)
    try:
        end = time.time() // 10 * 10                   # the newest window ends here
        open_page(chromium, dash.url)
        old = [m.aggregate("cam-a", "circle", 0, end - 300 + 10 * k, 50, 0.40, length=10.0) for k in range(3)]
        recent = [m.aggregate("cam-a", "circle", 0, end - 30, 4, 0.05, length=10.0),
                  m.aggregate("cam-a", "circle", 0, end - 20, 6, 0.12, length=10.0),
                  m.aggregate("cam-b", "circle", 0, end - 10, 3, 0.05, length=10.0),
                  m.aggregate("cam-b", "square", 1, end - 20, 2, 0.20, length=10.0),              # revision 0 ...
                  m.aggregate("cam-b", "square", 1, end - 20, 5, 0.20, length=10.0, revision=1)]  # ... revised
        # the window ending exactly 60 s before the newest end is out: the span is (end - 60, end]
        publisher.send(old + recent + [m.aggregate("cam-a", "circle", 0, end - 70, 8, 0.12, length=10.0)])
        chromium.wait_for("document.querySelector('#count-aggregates').textContent === '8'")
        chromium.wait_for("(document.querySelector('#sigma-stats').textContent || '').startsWith('18 ')")
        assert text(chromium, "#sigma-stats").startswith("18 detections in 4 windows; mean σ̄ ")
        bins = chromium.evaluate(HISTOGRAM)
        assert len(bins) == 24 and sum(b["count"] for b in bins) == 18
        bin_counts(bins, {0.05: 4 + 3, 0.12: 6, 0.20: 5})
        span = text(chromium, "#sigma-span")
        assert "the last 1 min before the newest one's end" in span
        assert f"({hms(end - 30)}–{hms(end)})" in span
        # the cumulative table still counts every window the page has seen
        assert text(chromium, 'tr[data-class="circle"] td.count') == str(150 + 4 + 6 + 3 + 8)

        # time moves on: a newer window pushes the others out of the histogram
        publisher.send([m.aggregate("cam-a", "circle", 0, end + 60, 9, 0.30, length=10.0)])
        chromium.wait_for("(document.querySelector('#sigma-stats').textContent || '').startsWith('9 ')")
        assert text(chromium, "#sigma-stats").startswith("9 detections in 1 window; ")
        bins = chromium.evaluate(HISTOGRAM)
        assert sum(b["count"] for b in bins) == 9
        bin_counts(bins, {0.30: 9})
    finally:
        dash.stop()


def seen_seconds(browser, device: str) -> int:
    """The 'last seen' cell of ``device`` in seconds ('12 s ago', '1 min 5 s ago')."""
    cell = text(browser, f'tr[data-device="{device}"] td.seen')
    found = re.fullmatch(r"(?:(\d+) min ?)?(?:(\d+) s)? ago", cell or "")
    assert found, cell
    return int(found[1] or 0) * 60 + int(found[2] or 0)


def test_last_seen_moves_and_a_silent_device_turns_stale_then_leaves_the_list(broker, publisher, chromium):
    dash = RunningDashboard(broker, stale_after_s=3.0, forget_after_s=7.0)
    stop = threading.Event()

    def heartbeat():                                   # cam-live keeps publishing metrics, cam-quiet falls silent
        while not stop.wait(0.5):
            publisher.send([m.metrics("cam-live", 5.0, 10, 0, 0)])

    beats = threading.Thread(target=heartbeat, daemon=True)
    try:
        open_page(chromium, dash.url)
        publisher.send([m.status("cam-live"), m.status("cam-quiet")])
        beats.start()
        row = 'tr[data-device="cam-quiet"] td.'
        chromium.wait_for(f"(document.querySelector('{row}state') || {{}}).textContent === 'online'")
        first = seen_seconds(chromium, "cam-quiet")
        assert first < 3
        chromium.wait_for(f"document.querySelector('{row}state').textContent === 'stale'", timeout=6)
        later = seen_seconds(chromium, "cam-quiet")
        assert later >= 3 and later > first
        assert "silent for" in chromium.evaluate(f"document.querySelector('{row}state').title")
        assert text(chromium, 'tr[data-device="cam-live"] td.state') == "online"
        assert seen_seconds(chromium, "cam-live") < 3
        chromium.wait_for("!document.querySelector('tr[data-device=\"cam-quiet\"]')", timeout=8)
        assert "cam-quiet" not in dash.get_json("/api/state")["devices"]
        removed = text(chromium, '#removed li[data-device="cam-quiet"]')
        assert "not heard from for" in removed and "forget-after, 7 s" in removed
        assert text(chromium, 'tr[data-device="cam-live"] td.state') == "online"
        # it comes back as soon as it speaks again
        publisher.send([m.metrics("cam-quiet", 1.0, 1, 0, 0)])
        chromium.wait_for(f"(document.querySelector('{row}state') || {{}}).textContent === 'online'")
    finally:
        stop.set()
        if beats.is_alive():
            beats.join(5)
        dash.stop()


def test_retained_status_of_a_device_gone_long_ago_is_not_listed_and_a_cleared_one_leaves(broker, publisher, chromium):
    now = time.time()
    publisher.send([m.status("cam-gone", "offline", ts=now - 7200),   # left two hours ago (forget after 1 h)
                    m.status("cam-idle", ts=now - 90),                  # said online 90 s ago, nothing since
                    m.status("cam-retire")], retain=True)
    dash = RunningDashboard(broker)
    try:
        open_page(chromium, dash.url)
        chromium.wait_for("document.querySelectorAll('#devices tbody tr').length === 2")
        rows = chromium.evaluate("[...document.querySelectorAll('#devices tbody tr')].map((tr) => tr.dataset.device)")
        assert rows == ["cam-idle", "cam-retire"]
        assert sorted(dash.state.snapshot()["devices"]) == ["cam-idle", "cam-retire"]
        # the page, opened after the dashboard dropped it, still says which device was dropped and why
        assert re.search(r"cam-gone removed at \d\d:\d\d:\d\d: not heard from for 72\d\d s",
                         text(chromium, '#removed li[data-device="cam-gone"]'))
        # last seen is the time the device wrote into its retained status, not when this dashboard got it
        idle = seen_seconds(chromium, "cam-idle")
        assert 89 <= idle <= 95
        time.sleep(2.2)                                        # no message at all meanwhile: the page ticks by itself
        assert seen_seconds(chromium, "cam-idle") >= idle + 2
        assert text(chromium, 'tr[data-device="cam-idle"] td.state') == "stale"
        assert text(chromium, 'tr[data-device="cam-retire"] td.state') == "online"

        topic, _ = m.status("cam-retire")
        publisher.send([(topic, b"")], retain=True)          # an operator retires the camera
        chromium.wait_for("!document.querySelector('tr[data-device=\"cam-retire\"]')")
        assert "retained status was cleared" in text(chromium, '#removed li[data-device="cam-retire"]')
        assert text(chromium, "#count-invalid") == "0"        # an empty message is a clear, not a bad message
    finally:
        dash.stop()
    again = RunningDashboard(broker)                          # the broker forgot it too: a new dashboard never sees it
    try:
        time.sleep(1.0)
        assert sorted(again.state.snapshot()["devices"]) == ["cam-idle"]
    finally:
        again.stop()


FAVICON = """(async () => {
  const link = document.querySelector('link[rel="icon"]');
  const resp = await fetch(link.href);
  const img = new Image();
  img.src = link.href;
  await img.decode();
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, 64, 64);
  const px = (x, y) => [...g.getImageData(x, y, 1, 1).data];
  return {href: link.href, type: resp.headers.get('content-type'), corner: px(0, 0), middle: px(32, 32),
          edge: px(14, 32), band: px(18, 32), tile: px(26, 32)};
})()"""


def test_the_page_has_its_own_favicon(dashboard, chromium):
    open_page(chromium, dashboard.url)
    icon = chromium.evaluate(FAVICON)
    assert icon["href"] == dashboard.url + "static/favicon.svg"
    assert icon["type"] == "image/svg+xml"
    # what it draws: rounded dark tile, a cyan box (its ±σ band around it), a magenta centre
    assert icon["corner"][3] == 0
    assert icon["middle"][:3] == [0xF7, 0x25, 0x85]
    assert icon["edge"][:3] == [0x4C, 0xC9, 0xF0]
    assert icon["tile"][:4] == [0x10, 0x14, 0x18, 255]
    band = icon["band"]                                  # 35 % cyan over the tile
    assert band[3] == 255 and all(abs(band[i] - round(0.35 * c + 0.65 * b)) <= 2
                                  for i, (c, b) in enumerate(zip((0x4C, 0xC9, 0xF0), (0x10, 0x14, 0x18))))
    import urllib.request
    with urllib.request.urlopen(dashboard.url + "favicon.ico", timeout=5) as resp:   # what browsers ask for
        assert resp.headers["Content-Type"] == "image/svg+xml"
        assert resp.read() == (Path(__file__).parents[2] / "dashboard/static/favicon.svg").read_bytes()


OVERFLOW = """(() => {
  const W = window.innerWidth, wide = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width && r.height && (r.right > W + 0.5 || r.left < -0.5))
      wide.push(`${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute('class') || ''} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return {W, scrollWidth: document.scrollingElement.scrollWidth, wide: wide.slice(0, 10)};
})()"""


def test_the_page_fits_a_phone_without_horizontal_scrolling(dashboard, publisher, chromium, tmp_path):
    chromium.call("Emulation.setDeviceMetricsOverride", session=True, width=390, height=844, deviceScaleFactor=3,
                  mobile=True)
    open_page(chromium, dashboard.url)
    t0 = (int(time.time()) // 60) * 60 - 120
    dets = [m.detection("circle", 0, (0.1, 0.2, 0.3, 0.6), 0.25), m.detection("square", 1, (0.55, 0.3, 0.9, 0.8), 0.02)]
    long_device = "camera-north-entrance-parking-level-2"
    publisher.send([m.status(long_device), m.metrics(long_device, 9.5, 123456, 789, 1234, 56),
                    m.detections(long_device, 987654, dets), m.status("cam-b", "offline"),
                    m.health(long_device, t0, 20),
                    *[m.aggregate(long_device, "circle", 0, t0 + 10 * k, 3 + k, 0.1 + 0.02 * k, length=10.0)
                      for k in range(12)],
                    m.aggregate("cam-b", "traffic light", 9, t0, 4, 0.3, length=10.0),
                    m.alert(long_device, "square", message="square count 12 > 10 on " + long_device + " for 3 windows"),
                    m.stats(t0, 2, 3),
                    ("sigmawatch/" + long_device + "/detections", b"{not json at all, and quite a long message}")])
    now, zone = round(time.time(), 3), "north-entrance-parking-level-2-gate"   # a tracked object, its events, counts
    publisher.send([m.tracked_detections(long_device, 987655, now, [m.tracked("circle", 0, (0.1, 0.2, 0.3, 0.6), 7)]),
                    m.track_event(long_device, 0, "new", 7, "circle", now, start=now),
                    m.track_event(long_device, 1, "entered", 7, "circle", now, start=now, zone=zone),
                    m.objects(long_device, now, {"circle": 1}, {zone: {"circle": 1}})])
    chromium.wait_for("document.querySelectorAll('.trk ol.track-events li').length === 2")
    chromium.wait_for("document.querySelectorAll('#devices tbody tr').length === 2")
    chromium.wait_for("document.querySelectorAll('.cam canvas').length === 1")
    chromium.wait_for("document.querySelectorAll('#counts-chart text.x-tick').length > 0")
    chromium.wait_for("!document.querySelector('#invalid-section').hidden")
    layout = chromium.evaluate(OVERFLOW)
    assert layout["W"] == 390
    assert layout["scrollWidth"] <= 390, layout
    assert layout["wide"] == [], layout                    # nothing sticks out (or is merely clipped away)
    # the device table became one card per device, each line labelled
    assert chromium.evaluate("getComputedStyle(document.querySelector('#devices thead')).display") == "none"
    labels = chromium.evaluate("[...document.querySelectorAll('tr[data-device=\"cam-b\"] td')].map("
                               "(td) => getComputedStyle(td, '::before').content)")
    assert labels[:3] == ['"device"', '"state"', '"last seen"']
    # the axis has fewer labels on a narrow chart, at round times within the published windows (t0 is a round
    # minute; the windows span 110 s)
    ticks = chromium.evaluate("[...document.querySelectorAll('#counts-chart text.x-tick')].map((e) => e.textContent)")
    allowed = {hms(t0 + 10 * k) for k in range(12)} | {hm(t0), hm(t0 + 60)}
    assert 2 <= len(ticks) <= 5 and set(ticks) <= allowed, ticks
    assert keep_screenshot(chromium, tmp_path, "dashboard-phone.png").stat().st_size > 20_000
