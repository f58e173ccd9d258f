"""The README's "Raspberry Pi install" steps, run as written as far as a container allows, with the real owners,
modes and service user; then ``edge-agent check`` and the unit's ExecStart run AS that user (how the steps are
executed or stood in for: readme_install.py)."""
from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from edge_helpers import ROOT, USERS, write_video
from readme_install import (
    DEVICE,
    README_USER,
    UNIT,
    Host,
    install_as_the_readme_says,
    installed_unit,
    readme_pi_steps,
    service_python,
    start_unit,
    unit_settings,
)

from tests.conftest import CI, missing, require_tool


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def host(request):
    """A root prefix laid out like a fresh system (/etc, /opt, /var/lib, /run, /srv: root:root 0755) and a
    unique name for the service user; the user, its group and the prefix are removed afterwards."""
    if os.geteuid() != 0:
        missing("the install test creates a system user and sets owners: it needs root (it runs as root in CI)")
    for tool, package in (("useradd", "passwd"), ("userdel", "passwd"), ("setpriv", "util-linux"),
                          ("install", "coreutils")):
        require_tool(tool, f"apt-get install {package}")
    prefix = Path(tempfile.mkdtemp(prefix="sigmawatch-root-"))
    prefix.chmod(0o755)                    # /tmp/... made by mkdtemp is 0700: the service user must pass it
    for d in ("etc", "opt", "var/lib", "run", "srv"):
        (prefix / d).mkdir(parents=True, mode=0o755)
    user = f"{README_USER}-t{secrets.token_hex(3)}"
    h = Host(prefix=prefix, user=user)
    try:
        yield h
    finally:
        for p in h.started:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        try:
            pwd.getpwnam(user)
            subprocess.run(["userdel", user], capture_output=True, timeout=30)
        except KeyError:
            pass
        try:
            grp.getgrnam(user)
            subprocess.run(["groupdel", user], capture_output=True, timeout=30)
        except KeyError:
            pass
        shutil.rmtree(prefix, ignore_errors=True)


def _camera(host: Host) -> Path:
    """A video file as the camera, readable by anyone (as /dev/video0 is for the video group)."""
    video = write_video(host.path("/srv/camera.avi"), frames=40)
    video.chmod(0o644)
    return video


# ---------------------------------------------------------------------------------------------- tests
def test_readme_gives_the_config_folder_to_the_service_group():
    """Without root: the README block parses, its config folder is the service group's, the unit reads that config."""
    steps = readme_pi_steps()
    mkdir = [s for s in steps if re.search(r"\binstall -d\b.* /etc/edge-agent$", s)]
    assert len(mkdir) == 1, steps
    assert f"-g {README_USER}" in mkdir[0] and re.search(r"-m 0?750\b", mkdir[0]), (
        f"{mkdir[0]!r}: /etc/edge-agent must be group-owned by the service user's group ({README_USER}) and "
        "0750, else the service cannot read its config")
    unit = unit_settings(UNIT.read_text())
    assert unit["User"] == [README_USER] and unit["ExecStart"][0].endswith("--config /etc/edge-agent/edge-agent.yaml")


@pytest.mark.mqtt
def test_pi_install_as_the_readme_says_then_check_and_start_as_the_service_user(host, secured_broker, subscriber):
    video = _camera(host)
    install_as_the_readme_says(host, secured_broker, video)

    # the README's `systemd-run ... edge-agent check` as the service user
    assert len(host.checks) == 1, host.executed
    check = host.checks[0]
    out = check.stdout + check.stderr
    assert check.returncode == 0, out
    for part in ("config", "model", "outbox", "source", "broker"):
        assert re.search(rf"^ok    {part}:", check.stdout, re.M), f"no ok line for {part}:\n{out}"
    assert "all checks passed" in check.stdout and "Traceback" not in out
    state = host.path("/var/lib/edge-agent")
    assert os.listdir(state) == [], "check must not create the outbox (the service does)"

    # what the README's steps left behind: owners and modes a Pi would have
    etc = host.path("/etc/edge-agent")
    st = etc.stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)) == \
        ("root", host.user, 0o750)
    secret = (etc / "mqtt-password").stat()
    assert (secret.st_uid, stat.S_IMODE(secret.st_mode)) == (0, 0o600), "the password file is root's alone"
    assert pwd.getpwnam(host.user).pw_uid < 1000, "useradd --system: a system uid"
    assert host.user in grp.getgrnam("video").gr_mem


    # `systemctl enable --now edge-agent`: the installed unit verifies, and its ExecStart runs as its user
    installed = host.path("/etc/systemd/system/edge-agent.service")
    unit_text = host.rewrite(installed.read_text())
    verify_copy = host.path("/run/edge-agent.service")
    verify_copy.write_text(unit_text)
    analyze = shutil.which("systemd-analyze")
    if analyze is None and CI:
        missing("systemd-analyze is not installed (apt-get install systemd)")
    if analyze:                   # locally without it, the rest of the test still runs
        out = subprocess.run([analyze, "verify", "--man=no", str(verify_copy)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
    unit = unit_settings(unit_text)
    op = subscriber(secured_broker, f"sigmawatch/{DEVICE}/#", username="operator", password=USERS["operator"])
    proc, log, server = start_unit(host, unit)
    try:
        got = []
        deadline = time.time() + 90
        while time.time() < deadline and not any(m.startswith(b"READY=1") for m in got) and proc.poll() is None:
            try:
                got.append(server.recv(4096))
            except socket.timeout:
                pass
        assert any(m.startswith(b"READY=1") for m in got), f"no READY=1 ({got}):\n{log.read_text()[-3000:]}"
        op.wait_for(lambda: op.payloads("/detections"), timeout=60, what="detections from the installed service")
        outbox = state / "outbox.sqlite"
        st = outbox.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode) & 0o077) == (pwd.getpwnam(host.user).pw_uid, 0), \
            "the outbox belongs to the service user and nobody else reads it (UMask=0077)"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        server.close()


def test_config_folder_the_service_user_cannot_enter_is_named_with_the_fix(host, tmp_path):
    """The old README's ``install -d -m 0750 /etc/edge-agent`` (root:root): ``check`` as the service user says
    which folder refuses and how to fix it, exit 2, no traceback."""
    for step in readme_pi_steps():
        step = re.sub(r"^sudo ", "", step)
        if step.startswith("useradd "):
            host.sh(host.rewrite(step))
    etc = host.path("/etc/edge-agent")
    host.sh(f"install -d -m 0750 {etc}")                 # what the README said before issue 19
    config = etc / "edge-agent.yaml"
    shutil.copy(ROOT / "configs" / "edge-agent.example.yaml", config)
    python, pythonpath = service_python(host.user, ROOT)
    proc = subprocess.run(host.as_user([python, "-m", "edge.cli", "check", "-c", str(config)], supplementary=[],
                                       env=host.base_env(PYTHONPATH=pythonpath)),
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert f"the folder {etc} (root:root mode 0750) cannot be entered" in out, out
    assert f"sudo chgrp {host.user} {etc} && sudo chmod g+rx {etc}" in out, out
    assert f"install -d -m 0750 -o root -g {host.user} {etc}" in out, out


@pytest.mark.mqtt
def test_unit_without_the_password_file_starts_and_names_the_file_to_write(host, secured_broker):
    """LoadCredential= of a file that is not there: systemd passes SetCredential='s empty default, so the unit
    starts; the config asks for the credential, so the agent stops with exit 2 (one of RestartPreventExitStatus=,
    no restart loop) naming the file and both ways out, without a traceback."""
    install_as_the_readme_says(host, secured_broker, _camera(host))
    host.path("/etc/edge-agent/mqtt-password").unlink()
    unit = installed_unit(host)
    proc, log, server = start_unit(host, unit)
    try:
        code = proc.wait(120)
    finally:
        server.close()
    text = log.read_text()
    assert code == 2 and str(code) in unit["RestartPreventExitStatus"][0].split(), text[-3000:]
    assert "Traceback" not in text
    assert "mqtt.password_credential 'mqtt-password': the systemd credential is empty" in text, text[-3000:]
    assert "/etc/edge-agent/mqtt-password" in text and "remove password_credential" in text, text[-3000:]
