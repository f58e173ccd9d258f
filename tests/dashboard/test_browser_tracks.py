"""Tracked objects on the page, read out of a real headless Chromium. First the whole way: the real agent process runs
the shipped int8 detector and its tracker on a scripted OpenCV video (a disc crossing a counting line into a zone,
a square standing in another zone), publishes to a real mosquitto, the real dashboard process (``python -m
dashboard``) relays it; what the page shows is compared with what the agent published, read by a subscriber of our
own. Then the timeouts and σ bands with messages built by the contract's encoders."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import dash_messages as m
import pytest
from dash_helpers import RunningDashboard
from test_browser_watch import keep_screenshot, open_page

from dashboard.tracks import EVENTS_PER_CAMERA, LOGGED
from edge.contract import schema
from tests.conftest import missing
from tests.edge.edge_helpers import ROOT, AgentProcess, Subscriber, agent_config, write_crossing_video

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]

SHIPPED_DETECTOR = ROOT / "edge" / "models" / "demo-detector-int8.tflite"
ZONE_OFFSET = timezone(timedelta(hours=5, minutes=30))   # open_page's browser zone, Asia/Kolkata
TRACKING = {"tracker": {"max_missed": 5},
            "zones": [{"name": "right", "polygon": [[0.55, 0.05], [1.0, 0.05], [1.0, 0.95], [0.55, 0.95]],
                       "classes": ["disc"]},
                      {"name": "top-right", "polygon": [[0.6, 0.0], [1.0, 0.0], [1.0, 0.4], [0.6, 0.4]]}],
            "lines": [{"name": "gate", "start": [0.5, 0.95], "end": [0.5, 0.05]}]}
CARD = '.trk[data-device="cam-1"]'


def hms(t: float) -> str:
    return datetime.fromtimestamp(t, ZONE_OFFSET).strftime("%H:%M:%S")


class DashboardProcess:
    """``python -m dashboard`` as a child process of its own, stopped by its pid."""

    def __init__(self, broker, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", "0", "--mqtt-port", str(broker.port),
                                      *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)))
        line = self.proc.stdout.readline()
        if not line.startswith("dashboard: http://127.0.0.1:"):
            self.stop()
            raise AssertionError(f"the dashboard did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.url = line.split()[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def detector():
    if not SHIPPED_DETECTOR.is_file():
        missing(f"{SHIPPED_DETECTOR} is missing (it is committed; edge/models/README.md says how to make it)")
    return SHIPPED_DETECTOR


def page_tracks(browser) -> list[dict]:
    return browser.evaluate(f"""[...document.querySelectorAll('{CARD} ul.track-list li')].map((li) => ({{
        track: Number(li.dataset.track), label: li.dataset.label, text: li.textContent,
        trail: S.tracks.get('cam-1').tracks.get(Number(li.dataset.track)).trail}}))""")


def page_log(browser, card: str = CARD) -> list[dict]:
    return browser.evaluate(f"""[...document.querySelectorAll('{card} ol.track-events li')].map((li) => ({{
        type: li.dataset.type, track: Number(li.dataset.track), seq: Number(li.dataset.seq),
        when: li.querySelector('.when').textContent, text: li.textContent}}))""")


def pixel(browser, x: float, y: float) -> list[int]:
    """RGBA of the tracks canvas of cam-1 at frame-normalized (x, y)."""
    return browser.evaluate(
        f"(() => {{ const c = document.querySelector('{CARD} canvas');"
        f" return [...c.getContext('2d').getImageData(Math.round({x} * c.width), Math.round({y} * c.height), 1, 1).data]; }})()")


def centres_by_track(sub: Subscriber) -> dict[int, list[tuple[float, float]]]:
    """Box centres of every tracked detection the agent published, per track id, in frame order (the wire's
    thousandths)."""
    out: dict[int, list] = {}
    for p in sorted(sub.raw_payloads("cam-1/detections"), key=lambda p: p["seq"]):
        for d in p["detections"]:
            if len(d) > 9:
                x0, y0, x1, y1 = d[4]
                out.setdefault(d[9], []).append(((x0 + x1) / 2000, (y0 + y1) / 2000))
    return out


def truth_now(sub: Subscriber, track: int) -> list[tuple[float, float]]:
    """Every centre the agent published for ``track`` so far, and the tracker's own box centres from its events."""
    events = [e for e in sub.payloads("cam-1/events") if e["track"] == track and "box" in e]
    return centres_by_track(sub).get(track, []) + [((e["box"][0] + e["box"][2]) / 2, (e["box"][1] + e["box"][3]) / 2)
                                                   for e in events]


def follows(trail: list, centres: list, tol: float) -> bool:
    """``trail`` is a run of consecutive ``centres`` (each point within ``tol``: a point may come from the tracker's
    own box of an event at that frame instead of the detection's)."""
    n = len(trail)
    return any(all(abs(trail[i][0] - centres[k + i][0]) <= tol and abs(trail[i][1] - centres[k + i][1]) <= tol
                   for i in range(n)) for k in range(len(centres) - n + 1))


def logged_events(sub: Subscriber, device: str) -> list[dict]:
    """The agent's events that the page's log shows (the kinds in LOGGED, and relabelling updates), newest first, as
    many as the page keeps."""
    events = sorted((schema.parse(p, "events") for t, p, _r in sub.messages if t.endswith(f"{device}/events")),
                    key=lambda e: e["seq"])
    logged = [e for e in events if e["type"] in LOGGED or "label" in e.get("changed", [])]
    return list(reversed(logged))[:EVENTS_PER_CAMERA]


def test_the_page_follows_the_real_agents_tracks_and_events(tmp_path, broker, detector, chromium):
    """cam-1 publishes detections with track ids and events; cam-2, the same scene, events only."""
    video = write_crossing_video(tmp_path / "crossing.avi", cross_frames=80, gone_frames=10)   # 9 s at 10 fps
    sub = Subscriber(broker, "sigmawatch/#", client_id="tracks-truth")
    dash = DashboardProcess(broker)
    agent = quiet = None
    try:
        open_page(chromium, dash.url)
        source = {"uri": str(video), "realtime": True, "exit_on_end": True}
        agent = AgentProcess(agent_config(tmp_path, broker, detector, video, tracking=TRACKING, source=source))
        quiet = AgentProcess(agent_config(tmp_path, broker, detector, video, device="cam-2", source=source,
                                          tracking={**TRACKING, "publish": "events_only"}))
        # --- while the disc crosses: its track with a trail, the square's track, the counts
        chromium.wait_for(f"[...document.querySelectorAll('{CARD} ul.track-list li[data-label=\"disc\"]')]"
                          ".some((li) => Number(li.dataset.trail) >= 8)", timeout=60)
        chromium.wait_for(f"[...document.querySelectorAll('{CARD} ul.present li')].some((li) => "
                          "li.textContent === 'disc present: 1')", timeout=10)
        shown = page_tracks(chromium)
        truth = centres_by_track(sub)
        disc = next(t for t in shown if t["label"] == "disc" and len(t["trail"]) >= 8)
        assert disc["track"] in truth, f"the page's disc track {disc['track']} is not an id the agent published"
        assert follows(disc["trail"], truth[disc["track"]], tol=0.03), (disc["trail"], truth[disc["track"]])
        xs = [p[0] for p in disc["trail"]]
        assert xs[-1] - xs[0] > 0.05 and all(b >= a - 0.01 for a, b in zip(xs, xs[1:])), "moving right"
        assert disc["text"].startswith(f"#{disc['track']} disc · seen ")
        # the canvas and the list are drawn together: where the list says the disc's trail ends, a white dot
        head = chromium.evaluate(f"""(() => {{
            const li = document.querySelector('{CARD} ul.track-list li[data-track="{disc['track']}"]');
            const [x, y] = li.dataset.head.split(',').map(Number), c = document.querySelector('{CARD} canvas');
            return [x, y, ...c.getContext('2d').getImageData(Math.round(x * c.width), Math.round(y * c.height), 1, 1).data];
            }})()""")
        assert any(abs(head[0] - x) <= 1e-4 and abs(head[1] - y) <= 1e-4 for x, y in truth_now(sub, disc["track"])), head
        assert all(v > 200 for v in head[2:5]), f"the trail ends in a white dot: {head}"
        assert pixel(chromium, 0.02, 0.97)[3] == 0, "nothing drawn where no track is"
        keep_screenshot(chromium, tmp_path, "dashboard-tracks-live.png")

        # the events-only camera: its tracks are on the page too, placed by their events' boxes
        quiet_card = '.trk[data-device="cam-2"]'
        chromium.wait_for(f"document.querySelectorAll('{quiet_card} ul.track-list li[data-label=\"disc\"]').length"
                          " === 1", timeout=30)

        # --- the agents reach the end of the video and stop cleanly: every track ends, the counts fall to zero
        assert agent.proc.wait(120) == 0, agent.logs()
        assert quiet.proc.wait(120) == 0, quiet.logs()
        for cam in ("cam-1", "cam-2"):
            sub.wait_for(lambda: sum(e["type"] == "end" for e in sub.payloads(f"{cam}/events")) >= 2, timeout=20,
                         what=f"both end events of {cam}")
        assert sub.payloads("cam-2/detections") == []
        chromium.wait_for(f"document.querySelectorAll('{CARD} ul.track-list li').length === 0", timeout=20)
        last_counts = sub.payloads("cam-1/objects")[-1]
        assert last_counts["objects"] == {}
        chromium.wait_for(f"[...document.querySelectorAll('{CARD} ul.present li')].map((li) => li.textContent)"
                          f".join('|') === 'camera offline; its last counts, at {hms(last_counts['ts'])}:|nothing present'",
                          timeout=20)
        assert chromium.evaluate(f"document.querySelector('{CARD} .meta').textContent") == "0 tracks"

        # --- the log: exactly the events a viewer acts on, newest first, at their capture times
        for card, cam in ((CARD, "cam-1"), (quiet_card, "cam-2")):
            expected = logged_events(sub, cam)
            chromium.wait_for(f"document.querySelectorAll('{card} ol.track-events li').length === {len(expected)}")
            got = page_log(chromium, card)
            assert [(g["type"], g["track"], g["seq"]) for g in got] == \
                [(e["type"], e["track"], e["seq"]) for e in expected], cam
            assert [g["when"] for g in got] == [hms(e["ts"]) for e in expected], cam
        chromium.wait_for(f"document.querySelectorAll('{quiet_card} ul.track-list li').length === 0", timeout=20)
        got = page_log(chromium)
        disc_log = [g["text"][len(g["when"]):] for g in reversed(got) if g["track"] == disc["track"]]
        assert disc_log[0] == f"#{disc['track']} disc new" and disc_log[-1] == f"#{disc['track']} disc ended"
        assert f"#{disc['track']} disc crossed gate (in)" in disc_log
        assert disc_log.index(f"#{disc['track']} disc entered right") < disc_log.index(
            f"#{disc['track']} disc left right")
        keep_screenshot(chromium, tmp_path, "dashboard-tracks.png")
    finally:
        for a in (agent, quiet):
            if a is not None:
                a.kill()
        dash.stop()
        sub.close()


def test_stale_tracks_leave_the_page_and_the_sigma_band_is_drawn(broker, publisher, chromium):
    dash = RunningDashboard(broker, track_timeout_s=2.0)
    try:
        open_page(chromium, dash.url)
        now = round(time.time(), 3)
        # cam-1 sends detections: track 5 with a wide sigma (box_sigma 0.25 * w, h); it never gets an end event
        box = (0.30, 0.30, 0.50, 0.70)
        publisher.send([m.status("cam-1"), m.tracked_detections("cam-1", 0, now, [m.tracked("disc", 1, box, 5, 0.25)]),
                        m.tracked_detections("cam-1", 1, now + 0.1, [m.tracked("disc", 1, box, 5, 0.25)]),
                        # cam-2 sends events only: a parked car, silent after its new event
                        m.status("cam-2"), m.track_event("cam-2", 0, "new", 1, "car", now, start=now,
                                                         box=(0.6, 0.6, 0.9, 0.9))])
        chromium.wait_for(f"document.querySelectorAll('{CARD} ul.track-list li[data-track=\"5\"]').length === 1")
        # the band: sigma of the left edge = hypot(0.25 * 0.2, 0.25 * 0.2 / 2) = 0.056 -> x 0.244 .. 0.356; of the
        # top edge hypot(0.25 * 0.4, 0.25 * 0.4 / 2) = 0.112 -> y 0.188 .. 0.412: the row y = 0.55 crosses the side bands
        y = 0.55
        assert pixel(chromium, 0.27, y)[3] > 0, "inside the band, left of the box"
        assert pixel(chromium, 0.33, y)[3] > 0, "inside the band, right of the box's edge"
        assert pixel(chromium, 0.22, y)[3] == 0, "outside the band"
        assert pixel(chromium, 0.40, y)[3] == 0, "inside the box, inside the band's inner edge"
        # nothing more about track 5: it leaves after the timeout; the events-only car stays
        chromium.wait_for(f"document.querySelectorAll('{CARD} ul.track-list li').length === 0", timeout=10)
        assert time.time() - now >= 2.0
        assert chromium.evaluate("document.querySelectorAll('.trk[data-device=\"cam-2\"] ul.track-list li')"
                                 ".length") == 1
        publisher.send([m.track_event("cam-2", 1, "end", 1, "car", now + 5, start=now, end=now + 4)])
        chromium.wait_for("document.querySelectorAll('.trk[data-device=\"cam-2\"] ul.track-list li').length === 0")
        texts = chromium.evaluate("[...document.querySelectorAll('.trk[data-device=\"cam-2\"] ol.track-events li')]"
                                  ".map((li) => li.textContent)")
        assert texts == [f"{hms(now + 5)}#1 car ended", f"{hms(now)}#1 car new"]
        # a page opened now starts from the server's snapshot: the same log
        open_page(chromium, dash.url)
        chromium.wait_for("document.querySelectorAll('.trk[data-device=\"cam-2\"] ol.track-events li').length === 2")
        # cam-1 goes offline (its agent killed: the last will): its tracks go, its last counts stay, marked as such
        publisher.send([m.tracked_detections("cam-1", 2, now + 6, [m.tracked("disc", 1, box, 6)]),
                        m.objects("cam-1", now + 6, {"disc": 1})])
        chromium.wait_for(f"document.querySelectorAll('{CARD} ul.track-list li[data-track=\"6\"]').length === 1")
        publisher.send([m.status("cam-1", "offline")])
        chromium.wait_for(f"document.querySelectorAll('{CARD} ul.track-list li').length === 0")
        present = chromium.evaluate(f"[...document.querySelectorAll('{CARD} ul.present li')].map((li) => li.textContent)")
        assert present == [f"camera offline; its last counts, at {hms(now + 6)}:", "disc present: 1"]
    finally:
        dash.stop()
