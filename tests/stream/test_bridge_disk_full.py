"""A full landing directory (a small tmpfs filled up): the real bridge stays up, lands, acknowledges and confirms
nothing, says so in its retained status and its log, and lands everything by itself once space returns."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time

import pytest

from edge.contract import schema
from tests.support.bridges import landed, write_bridge_config
from tests.support.generate import detections_msg
from tests.support.publisher import Collector, Publisher
from tests.conftest import missing

pytestmark = pytest.mark.mqtt


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs at tmp_path/landing (root only), unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        missing("mounting a small tmpfs needs root and mount (the disk-full test runs as root in CI)")
    mnt = tmp_path / "landing"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(directory) -> object:
    """Fill the filesystem: returns the filler's path."""
    filler = directory / "_filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    try:                      # the last partial block too
        with open(directory / "_filler2", "wb") as f:
            while True:
                f.write(b"\0" * 512)
                f.flush()
    except OSError:
        pass
    return filler


def _wait(cond, timeout, what, bridge):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert bridge.alive(), f"the bridge died while waiting for {what}:\n{bridge.tail()}"
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{bridge.tail()}")


def test_disk_full_holds_everything_and_resumes_by_itself(tmp_path, bridges, broker, small_tmpfs):
    landing = small_tmpfs
    cfg = write_bridge_config(tmp_path / "stream.yaml", broker.host, broker.port, landing, retry_interval_s=0.5)
    watch = Collector(broker.host, broker.port, ["sigmawatch/_bridge/+/status", "sigmawatch/+/landed"])
    bridge = bridges(cfg, "b1").wait_subscribed()
    pub = Publisher(broker.host, broker.port)

    def states():
        return [p["state"] for t, p, _, _ in watch.snapshot() if t.endswith("/status")]

    def confirmed():
        return {s for t, p, _, _ in watch.snapshot() if t.endswith("/landed") for a, b in p["seqs"]
                for s in range(a, b + 1)}
    _wait(lambda: "online" in states(), 10, "the bridge's online status", bridge)
    filler = _fill(landing)
    for seq in range(50):
        pub.publish("sigmawatch/cam-1/detections",
                    schema.encode(detections_msg("cam-1", seq, 1_700_000_000.0 + seq, [(0, 0.9, 0.1)])))
    degraded = _wait(lambda: [p for t, p, _, _ in watch.snapshot() if t.endswith("/status") and
                              p["state"] == "degraded"], 15, "a degraded status", bridge)
    assert "No space left on device" in degraded[-1]["reason"] and str(landing) in degraded[-1]["reason"]
    assert degraded[-1]["buffered"] >= 1
    time.sleep(2)                                   # several retries while still full
    assert bridge.alive() and not list(landing.glob("*.jsonl")) and not list(landing.glob(".*.tmp"))
    assert confirmed() == set(), "nothing may be confirmed while nothing landed"
    assert "cannot write the landing directory" in bridge.tail() and "No space left" in bridge.tail()

    filler.unlink()                                 # space returns
    (landing / "_filler2").unlink(missing_ok=True)
    _wait(lambda: states()[-1] == "online", 15, "the online status again", bridge)
    seqs = _wait(lambda: (lambda s: s if len(s) >= 50 else None)(
        sorted(x["seq"] for x in landed(landing) if x["kind"] == "detections")), 15, "the held messages", bridge)
    assert seqs == list(range(50)), "each held message lands once"
    _wait(lambda: confirmed() == set(range(50)), 10, "their confirmations", bridge)
    pub.close()
    watch.close()
    assert bridge.terminate() == 0, bridge.tail()
