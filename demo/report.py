"""The demo's printed summary."""
from __future__ import annotations

import json
from typing import Callable


def _fmt_lat(d: dict) -> str:
    if not d or not d.get("n"):
        return "n/a"
    return f"p50 {d['p50_s'] * 1000:.0f} ms, p95 {d['p95_s'] * 1000:.0f} ms (n={d['n']})"


WINDOW_GOAL_P50_S = 3.0      # issue 15: the window's first result p50 <= 3 s after the window closes


def _fmt_window(d: dict) -> str:
    if not d or not d.get("n"):
        return "n/a (no window result received)"
    met = "met" if d["p50_s"] <= WINDOW_GOAL_P50_S else "NOT met"
    return (f"p50 {d['p50_s']:.2f} s, p99 {d['p99_s']:.2f} s (n={d['n']} windows)   "
            f"goal: p50 <= {WINDOW_GOAL_P50_S:g} s after the window closes -> {met}")


def print_summary(s: dict, say: Callable[[str], None] = print) -> None:
    if not s.get("devices") and not s.get("frames_processed"):
        say("\nSummary: nothing flowed (no agent ran).")
        return
    ratio = s.get("bytes_ratio")
    say("\n================ sigmawatch demo summary ================")
    say(f"devices                  {', '.join(s['devices'])}")
    if s.get("input"):
        say(f"camera input             {s['input']['kind']}: {s['input']['video']} -> {s['input']['model']}")
    say(f"frames processed         {s['frames_processed']} (dropped by the agents: {s['frames_dropped']})")
    say(f"detections published     {s['detections_published']} in {s['detection_messages']} messages "
        f"{json.dumps(s['detections_by_class'])}")
    say(f"bytes sent               {s['bytes_sent']:,} B of detections+sigma vs {s['jpeg_bytes_replaced']:,} B "
        f"of JPEG frames" + (f" ({ratio * 100:.2f} %, {1 / ratio:.0f}x less)" if ratio else ""))
    say(f"events aggregated        {s['events_aggregated']} in {s['aggregate_windows']} windows "
        f"{json.dumps(s['aggregated_by_class'])}")
    say(f"alerts                   {s['alert_transitions']} transitions, firing at the end: "
        f"{', '.join(s['alerts_firing']) or 'none'}")
    if s.get("recount") is not None:
        bad = sum(len(v) for v in s["recount"].values())
        say("exactly-once check       " + ("every (device, class, window) count matches the published detections"
                                            if not bad else f"{bad} mismatching windows: {json.dumps(s['recount'])[:300]}"))
    if s.get("dead_letters") is not None:
        say(f"dead letters             {s['dead_letters']} (late frames added to their windows: {s['late_events']})")
    say(f"latency capture->MQTT    {_fmt_lat(s['latency_capture_to_mqtt'])}")
    say(f"latency capture->window result {_fmt_lat(s['latency_capture_to_aggregate'])}")
    say(f"window latency           {_fmt_window(s['latency_window_end_to_aggregate'])}")
    say("  (window end -> the window's first result received on MQTT)")
    say("=========================================================")
