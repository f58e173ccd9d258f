"""The README's "Raspberry Pi install" steps, run as written as far as a container allows (used by
test_edge_install.py; helpers only, no tests here).

The steps come from the README's code block itself: every line is either executed (``useradd``, ``install -d``,
``cp``, the password file) or stood in for by a known substitute (apt and pip install nothing here; the clone is
a copy of this tree; ``systemd-run`` and ``systemctl enable --now`` become the same user, groups, credential and
state directory set up by hand, since this container has no systemd as PID 1). A line this test does not know
fails it, so the README cannot drift away from what was tested.

All paths the README names (/etc, /opt, /var) are moved under a temporary root prefix; users, groups, owners
and modes are real (the test runs as root and deletes its user afterwards). The user gets a unique name
(``edge-agent-t...``) so that two runs on one machine cannot collide; the paths keep the README's names.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import site
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from edge_helpers import ROOT, USERS

from tests.conftest import missing

README = ROOT / "README.md"
UNIT = ROOT / "systemd" / "edge-agent.service"
README_USER = "edge-agent"            # the name the README and the unit use; the test's user is a unique variant
DEVICE = "cam-a"                      # a user of the secured_broker fixture, allowed by configs/mosquitto/acl


# ---------------------------------------------------------------------------------------------- the README's block
def readme_pi_steps() -> list[str]:
    """The commands of the first ``bash`` block under "### Raspberry Pi install (systemd service)": comments
    dropped, backslash continuations joined."""
    text = README.read_text()
    section = re.search(r"^### Raspberry Pi install \(systemd service\)\n(.*?)(?=^#{2,3} )", text, re.M | re.S)
    assert section, "README.md has no '### Raspberry Pi install (systemd service)' section"
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the README's Pi install section has no ```bash block"
    steps: list[str] = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        line = _strip_comment(line).strip()
        if line:
            steps.append(re.sub(r"\s+", " ", line))
    return steps


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


# ---------------------------------------------------------------------------------------------- the emulated host
@dataclass
class Host:
    """A root prefix standing in for /, the service user's name, and what the steps left behind."""
    prefix: Path
    user: str
    cwd: Path = None                                  # `cd` of the README's block
    substituted: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    checks: list[subprocess.CompletedProcess] = field(default_factory=list)
    started: list[subprocess.Popen] = field(default_factory=list)

    def path(self, absolute: str) -> Path:
        return self.prefix / absolute.lstrip("/")

    def rewrite(self, command: str) -> str:
        """The README's absolute paths under the prefix; the service user's name where a user or group is meant."""
        command = re.sub(r"(?:(?<=[\s=:'\"])|^)/(?=(?:etc|opt|var|srv)/)", f"{self.prefix}/", command)
        command = re.sub(rf"(?<=User=){README_USER}\b(?![./-])|(?<=Group=){README_USER}\b(?![./-])"
                         rf"|(?<=-[og] ){README_USER}\b(?![./-])", self.user, command)
        if command.startswith("useradd "):
            command = re.sub(rf" {README_USER}$", f" {self.user}", command)
        return command

    def sh(self, command: str) -> None:
        """Run one README line as root (the README says sudo), in the block's current directory."""
        proc = subprocess.run(["bash", "-euc", command], cwd=self.cwd or self.prefix, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"README step failed: {command}\n{proc.stdout}{proc.stderr}"
        self.executed.append(command)

    # ------------------------------------------------------------------ the user's view
    def identity(self, supplementary: list[str]) -> tuple[int, int, list[int]]:
        pw = pwd.getpwnam(self.user)
        groups = set(os.getgrouplist(self.user, pw.pw_gid)) | {grp.getgrnam(g).gr_gid for g in supplementary}
        return pw.pw_uid, pw.pw_gid, sorted(groups)

    def as_user(self, argv: list[str], *, supplementary: list[str], env: dict[str, str], umask: str = "0022",
                cwd: str = "/") -> list[str]:
        """argv run as the service user the way systemd runs it: its uid and gid, the user database's groups
        plus SupplementaryGroups=, a clean environment, the unit's umask. argv is executed by sh: setpriv keeps
        root's capabilities until the exec it makes itself (which would pass folders the user cannot)."""
        uid, gid, groups = self.identity(supplementary)
        return ["env", "-i", *[f"{k}={v}" for k, v in env.items()],
                shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={gid}",
                f"--groups={','.join(map(str, groups))}", "--", "sh", "-c", f'umask {umask}; cd {cwd}; exec "$@"',
                "sh", *argv]

    def base_env(self, **extra: str) -> dict[str, str]:
        pw = pwd.getpwnam(self.user)
        return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                "USER": self.user, "LOGNAME": self.user, "HOME": pw.pw_dir, "OMP_NUM_THREADS": "1", **extra}


def service_python(user: str, code: Path) -> tuple[str, str]:
    """An interpreter (and PYTHONPATH) the service user can run that imports the edge agent's dependencies from
    this test's environment: the test's own, else the system's Python of the same version with this venv's
    site-packages (a venv under /root is out of a system user's reach). This stands in for the README's venv."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    pythonpath = os.pathsep.join([str(code), *site.getsitepackages()])
    candidates = [os.path.realpath(sys.executable), shutil.which(f"python{version}"), f"/usr/bin/python{version}",
                  f"/usr/local/bin/python{version}"]
    uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
    tried = []
    for python in dict.fromkeys(c for c in candidates if c and os.path.isfile(c)):
        # through sh: setpriv keeps root's capabilities until the exec it makes itself
        probe = subprocess.run(["env", "-i", f"PYTHONPATH={pythonpath}", shutil.which("setpriv"), f"--reuid={uid}",
                                f"--regid={gid}", "--clear-groups", "sh", "-c", 'exec "$@"', "sh", python, "-c",
                                "import cv2, numpy, paho.mqtt.client, pydantic, yaml, edge.cli; print(edge.cli.__file__)"],
                               capture_output=True, text=True, timeout=120, cwd="/")
        if probe.returncode == 0 and probe.stdout.strip().startswith(str(code)):
            return python, pythonpath
        tried.append(f"{python}: {(probe.stderr or probe.stdout).strip().splitlines()[-1:]}")
    missing(f"no Python {version} with the edge agent's dependencies can be run by a system user here "
            f"({'; '.join(tried)})")


# ---------------------------------------------------------------------------------------------- the steps
def install_as_the_readme_says(host: Host, broker, video: Path) -> None:
    """Walk the README's block. Each line is executed (rewritten under the prefix) or substituted; an unknown
    line fails the test."""
    password = USERS[DEVICE]
    for raw in readme_pi_steps():
        step = re.sub(r"(^|&& )sudo ", r"\1", raw)
        cmd = host.rewrite(step)
        if re.match(r"apt(-get)? (update|install) ", step):
            host.substituted.append(f"{raw}  -> nothing (packages: this environment has them)")
        elif m := re.fullmatch(r"useradd --system .*", step):
            assert re.search(r"--groups video\b", step), "the README's user must be in the video group"
            assert step.endswith(f" {README_USER}"), step
            host.sh(cmd)
        elif m := re.fullmatch(r"git clone <this repository> (\S+) && cd (\S+)", step):
            dest = host.path(m[1])
            dest.parent.mkdir(parents=True, exist_ok=True)
            for part in ("edge", "configs", "systemd"):          # what the agent, its config and its unit need
                shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
            for part in ("README.md", "pyproject.toml"):
                shutil.copy2(ROOT / part, dest / part)
            host.cwd = host.path(m[2])
            host.substituted.append(f"{raw}  -> copy of this tree's edge/, configs/, systemd/")
        elif m := re.fullmatch(r"python3 -m venv (\S+)", step):
            (host.cwd / m[1] / "bin").mkdir(parents=True)
            host.substituted.append(f"{raw}  -> an empty {m[1]}/bin")
        elif m := re.fullmatch(r"(\S+)/bin/pip install '\.\[edge\]'", step):
            python, pythonpath = service_python(host.user, host.cwd)
            script = host.cwd / m[1] / "bin" / "edge-agent"    # pip's console script for edge.cli:main
            script.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(pythonpath)} exec {shlex.quote(python)} "
                              "-m edge.cli \"$@\"\n")
            script.chmod(0o755)
            host.substituted.append(f"{raw}  -> {script.name} script running {python} -m edge.cli")
        elif re.fullmatch(r"install -d( -[ogm] \S+)+ /etc/edge-agent", step):
            host.sh(cmd)
        elif m := re.fullmatch(r"cp configs/edge-agent\.example\.yaml (\S+)", step):
            host.sh(cmd)
            edit_config(host, host.path(m[1]), broker, video)
        elif m := re.fullmatch(r"""sh -c 'umask 077; printf %s "THE-PASSWORD" > (\S+)'""", step):
            host.sh(cmd.replace("THE-PASSWORD", password))
        elif step.startswith("systemd-run "):
            host.checks.append(systemd_run(host, step))
        elif m := re.fullmatch(r"cp systemd/edge-agent\.service (\S+)", step):
            host.path(m[1]).mkdir(parents=True, exist_ok=True)
            host.sh(cmd)
        elif step == f"systemctl daemon-reload && systemctl enable --now {README_USER}":
            host.substituted.append(f"{raw}  -> systemd-analyze verify + the unit's ExecStart as its user")
        elif step.startswith("systemctl status "):
            host.substituted.append(f"{raw}  -> nothing")
        else:
            pytest.fail(f"README.md's Pi install has a step this test does not know: {raw!r}; teach "
                        f"tests/edge/readme_install.py to run it (or what stands in for it)")


def edit_config(host: Host, path: Path, broker, video: Path) -> None:
    """The README's "edit device_id, source, mqtt": written as root in place (owner and mode unchanged)."""
    cfg = yaml.safe_load(path.read_text())
    cfg["device_id"] = DEVICE
    cfg["source"].update(uri=str(video), loop=True)
    cfg["mqtt"].update(host=broker.host, port=broker.port, username=DEVICE, metrics_interval_s=1)
    cfg["mqtt"].pop("tls")                 # this test broker has no TLS listener
    cfg["model"]["threads"] = 1
    for section, key in (("model", "path"), (None, "state_dir")):   # the README's absolute paths, under the prefix
        node = cfg[section] if section else cfg
        node[key] = host.rewrite(node[key])
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)


def systemd_run(host: Host, step: str) -> subprocess.CompletedProcess:
    """``systemd-run --pty --wait -p K=V ... COMMAND``: what systemd would set up for those properties (the
    user, its groups, the state directory, the credential), then COMMAND as that user."""
    words = shlex.split(step)
    props: dict[str, list[str]] = {}
    i = 1
    while words[i].startswith("-"):
        if words[i] == "-p":
            key, value = words[i + 1].split("=", 1)
            props.setdefault(key, []).append(value)
            i += 2
        else:
            assert words[i] in ("--pty", "--wait"), f"systemd-run option {words[i]} is not emulated here"
            i += 1
    known = {"User", "SupplementaryGroups", "LoadCredential", "StateDirectory", "StateDirectoryMode"}
    assert set(props) <= known, f"systemd-run properties {set(props) - known} are not emulated here"
    unit = unit_settings(UNIT.read_text())
    for key in ("User", "SupplementaryGroups", "LoadCredential", "StateDirectory", "StateDirectoryMode"):
        assert props.get(key) == unit.get(key), (f"the README's check runs with {key}={props.get(key)}, the service "
                                                 f"with {key}={unit.get(key)}: 'the same credential and user'")
    env = setup_service_dirs(host, props)
    argv = [host.rewrite(w) for w in words[i:]]
    proc = subprocess.run(host.as_user(argv, supplementary=props.get("SupplementaryGroups", [""])[0].split(),
                                       env=env), capture_output=True, text=True, timeout=180)
    host.executed.append(" ".join(argv))
    return proc


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def setup_service_dirs(host: Host, props: dict[str, list[str]]) -> dict[str, str]:
    """StateDirectory= (created, owned by the user, StateDirectoryMode=) and LoadCredential=/SetCredential=
    (read as root, handed over in a directory only the user reads): the environment systemd would pass."""
    pw = pwd.getpwnam(host.user)
    for name in props.get("StateDirectory", []):
        state = host.path(f"/var/lib/{name}")
        state.mkdir(parents=True, exist_ok=True)
        os.chown(state, pw.pw_uid, pw.pw_gid)
        state.chmod(int(props.get("StateDirectoryMode", ["0755"])[0], 8))
    env = host.base_env()
    if "LoadCredential" in props:
        creds = Path(tempfile.mkdtemp(prefix="credentials-", dir=host.path("/run")))
        defaults = dict(v.split(":", 1) for v in props.get("SetCredential", []))
        for spec in props["LoadCredential"]:
            name, source = spec.split(":", 1)
            source_path = Path(host.rewrite(source))
            data = source_path.read_bytes() if source_path.is_file() else defaults[name].encode().decode(
                "unicode_escape").encode()
            (creds / name).write_bytes(data)
            (creds / name).chmod(0o400)
            os.chown(creds / name, pw.pw_uid, pw.pw_gid)
        os.chown(creds, pw.pw_uid, pw.pw_gid)
        creds.chmod(0o500)
        env["CREDENTIALS_DIRECTORY"] = str(creds)
    return env


def installed_unit(host: Host) -> dict[str, list[str]]:
    """The unit the README copied to /etc/systemd/system, its paths under the prefix, its User= the test's."""
    return unit_settings(host.rewrite(host.path("/etc/systemd/system/edge-agent.service").read_text()))


def start_unit(host: Host, unit: dict[str, list[str]]) -> tuple[subprocess.Popen, Path, socket.socket]:
    """What ``systemctl start`` does for this unit, as far as it matters to the agent: StateDirectory=,
    LoadCredential=/SetCredential=, $NOTIFY_SOCKET, Environment=, then ExecStart as User= with its groups,
    UMask= and WorkingDirectory=. Returns the process, its log (stderr) and the notify socket."""
    env = setup_service_dirs(host, unit)
    notify = host.path("/run/notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(notify))
    notify.chmod(0o666)
    server.settimeout(0.5)
    env.update(NOTIFY_SOCKET=str(notify), **dict(e.split("=", 1) for e in unit.get("Environment", [])))
    log = host.path("/run/edge-agent.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(host.as_user(shlex.split(unit["ExecStart"][0]),
                                             supplementary=unit["SupplementaryGroups"][0].split(), env=env,
                                             umask=unit["UMask"][0], cwd=unit["WorkingDirectory"][0]),
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    host.started.append(proc)
    return proc, log, server
