"""``sigmawatch-demo --screenshot``: one PNG of the live dashboard, taken by Chromium's own headless mode.

No browser driver: ``chromium --headless --screenshot`` loads the page in its snapshot mode (``?snapshot``:
one ``/api/state`` request instead of the never-ending event stream, which would keep the page loading),
lets it run for a few seconds of virtual time and writes the PNG. Chromium runs in its
own process group, stopped by that group's id if it does not finish in time.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome")
# the flags this machine needs: no sandbox as root, and no background connections (the network is closed)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            return path
    return None


def screenshot(url: str, out: Path, size: tuple[int, int] = (1400, 1100), settle_ms: int = 3000,
               timeout_s: float = 60.0) -> str | None:
    """Save a PNG of ``url``; returns None on success, else why not (the demo reports it and goes on)."""
    binary = find_chromium()
    if binary is None:
        return "Chromium is not installed (apt-get install chromium)"
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sigmawatch-shot-") as profile:
        proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                 f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={settle_ms}",
                                 f"--screenshot={out}", url.rstrip("/") + "/?snapshot"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return f"Chromium did not finish the screenshot within {timeout_s:.0f} s"
    if proc.returncode != 0 or not out.is_file():
        return f"Chromium exited with {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}"
    return None
