"""Alert rules as plain Python state machines (no PyFlink): fed window payloads, they return transitions.

Flink wraps these in keyed functions (``stream.functions``), keeping the state below in keyed state and
driving the timers; the tests drive them directly too.

- ``class_count`` and ``uncertainty_spike`` look at one key's windows (``<device>/<class>`` or
  ``_fleet/<class>``). A firing alert clears on the next window whose condition is false, or when the
  next window passes without any detections of that key (the event-time timer calls :meth:`on_gap`).
- ``device_silent`` fires when a device seen before stays silent ``after_s`` seconds (processing time)
  and clears on its next message.

Every alert has the stable id ``<rule>:<device|_fleet>:<class|_all>`` (``edge.contract.outputs.alert_id``); the
payload is republished retained on every transition, so dashboards always see the current state.
"""
from __future__ import annotations

from typing import Optional

from edge.contract import outputs
from stream.config import AlertRules, ClassCountRule, ClockSkewRule, DeviceSilentRule, UncertaintySpikeRule


def _alert(rule, state: str, device: Optional[str], label: Optional[str], since: float, ts: float,
           value: Optional[float], threshold: Optional[float], message: str, revised: bool = False) -> dict:
    return outputs.build("alert", rule=rule.id, kind=rule.type, severity=rule.severity, state=state, device=device,
                        label=label, since=float(since), ts=float(ts),
                        value=None if value is None else float(value),
                        threshold=None if threshold is None else float(threshold),
                        message=message + (" (decided on a revised window: late frames changed it)" if revised else ""),
                        revised=revised)


class WindowRules:
    """class_count / uncertainty_spike rules for one key (device or fleet, and class), clock_skew for one device
    (on its health windows). ``state`` is a JSON-able dict (Flink keyed state).

    A window's revision (late frames changed it, ``revised``) is judged again when it is the key's latest window,
    and the transition says so; revisions of older windows change nothing (their successors were judged since)."""

    def __init__(self, rules: AlertRules):
        self.rules = [r for r in rules.rules if isinstance(r, (ClassCountRule, UncertaintySpikeRule, ClockSkewRule))]

    def applicable(self, payload: dict) -> list:
        if payload["type"] == "health":
            return [r for r in self.rules if isinstance(r, ClockSkewRule)]
        scope = "fleet" if payload["type"] == "fleet" else "device"
        return [r for r in self.rules if not isinstance(r, ClockSkewRule) and r.scope == scope
                and r.label in ("*", payload["label"])]

    def on_window(self, state: dict, payload: dict) -> list[dict]:
        out = []
        device = payload.get("device")
        label = payload.get("label")
        revised = payload.get("revision", 0) > 0
        end = payload["window_end"]
        if revised and end < state.get("last_end", 0.0):
            return out
        state["last_end"] = max(state.get("last_end", 0.0), end)
        for rule in self.applicable(payload):
            st = state.setdefault(rule.id, {"firing": False, "since": 0.0, "hist": []})
            if isinstance(rule, ClockSkewRule):
                offset = payload["clock_offset_s"]
                if offset is None:      # no metrics in this window: nothing to judge
                    continue
                value, threshold = abs(offset), rule.max_offset_s
                cond = value > threshold
                what = (f"device clock {'ahead of' if offset < 0 else 'behind'} the bridge's by {value:.1f} s "
                        f"(tolerance {threshold:g} s): check its NTP synchronization")
            elif isinstance(rule, ClassCountRule):
                value, threshold = payload["detections"], rule.min_count
                cond = value >= threshold
                what = f"{value} x {label} in {payload['window_end'] - payload['window_start']:g} s (>= {threshold})"
            else:
                value = payload["sigma_mean"]
                if value is None:      # a model without uncertainty: nothing to judge, the state stays as it is
                    continue
                hist = st["hist"]
                if revised and st.get("hist_end") == end:    # this window's earlier value is replaced, not added
                    hist = hist[:-1]
                enough = len(hist) >= rule.min_history and payload["with_sigma"] >= rule.min_detections
                avg = sum(hist) / len(hist) if hist else None
                threshold = rule.factor * avg if avg is not None else None
                cond = bool(enough and threshold is not None and value > threshold)
                what = (f"mean sigma {value:.3f} of {label} > {rule.factor:g} x recent {avg:.3f}" if avg is not None
                        else f"mean sigma {value:.3f} of {label}")
                if payload["with_sigma"] >= rule.min_detections:
                    st["hist"], st["hist_end"] = (hist + [value])[-rule.history:], end
            where = f"device {device}" if device else "fleet"
            if cond and not st["firing"]:
                st["firing"], st["since"] = True, payload["window_start"]
                out.append(_alert(rule, "firing", device, label, st["since"], end, value,
                                  threshold, f"{where}: {what}", revised))
            elif not cond and st["firing"]:
                st["firing"] = False
                out.append(_alert(rule, "cleared", device, label, st["since"], end, value,
                                  threshold, f"{where}: back to normal ({what})", revised))
        return out

    def on_gap(self, state: dict, device: Optional[str], label: str, window_end: float) -> list[dict]:
        """No window for this key ended at ``window_end``: zero detections clear every firing alert."""
        if state.get("last_end", 0.0) >= window_end:
            return []
        out = []
        for rule in self.rules:
            st = state.get(rule.id)
            if st and st["firing"]:
                st["firing"] = False
                where = f"device {device}" if device else "fleet"
                gone = f"no {label} detections" if label else "nothing received"
                out.append(_alert(rule, "cleared", device, label, st["since"], window_end, 0.0, None,
                                  f"{where}: {gone} in the last window"))
        return out

    def any_firing(self, state: dict) -> bool:
        return any(isinstance(v, dict) and v.get("firing") for v in state.values())


class SilenceRule:
    """device_silent: ``state`` = {"last": processing time of the last activity, "firing": bool}."""

    def __init__(self, rules: AlertRules):
        found = [r for r in rules.rules if isinstance(r, DeviceSilentRule)]
        self.rule: Optional[DeviceSilentRule] = found[0] if found else None

    def on_activity(self, state: dict, device: str, now: float) -> list[dict]:
        out = []
        if self.rule and state.get("firing"):
            out.append(_alert(self.rule, "cleared", device, None, state["since"], now, now - state["last"],
                              self.rule.after_s, f"device {device} is sending again"))
        state.update(last=now, firing=False)
        return out

    def on_timer(self, state: dict, device: str, now: float) -> list[dict]:
        if not self.rule or state.get("firing") or "last" not in state:
            return []
        silent = now - state["last"]
        if silent + 0.05 < self.rule.after_s:   # a newer activity re-armed a later timer
            return []
        state.update(firing=True, since=state["last"])
        return [_alert(self.rule, "firing", device, None, state["last"], now, silent, self.rule.after_s,
                       f"device {device} silent for {silent:.0f} s (>= {self.rule.after_s:g} s)")]
