"""Why this process cannot read (or write) a path, in words a service operator can act on.

A file of a system service is usually unreadable for one of two reasons: a folder on the way cannot be entered
(``install -d -m 0750`` leaves ``/etc/edge-agent`` to root:root), or the file itself is not readable by the
service user. :func:`explain` finds the first path component that stops this user and says who owns it, its
mode, which user and groups this process runs as, and the command that fixes it.

Standard library only.
"""
from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def _user() -> str:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    groups = []
    for gid in sorted(set(os.getgroups()) | {os.getegid()}):
        try:
            groups.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            groups.append(str(gid))
    return f"user {name} (uid {uid}, groups {', '.join(groups)})"


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} mode {stat.S_IMODE(st.st_mode):04o}"


def username() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def blocking_component(path: str | os.PathLike, need: int = os.R_OK) -> tuple[Path, str] | None:
    """The first component of ``path`` this process cannot pass: ``(component, "enter" | "read" | "write")``,
    or None when nothing on the way is refused (the path may still not exist)."""
    path = Path(os.path.abspath(path))
    for parent in reversed(path.parents):
        if parent.exists() and not os.access(parent, os.X_OK):
            return parent, "enter"
    if path.exists() and not os.access(path, need):
        return path, "write" if need & os.W_OK else "read"
    return None


def explain(path: str | os.PathLike, what: str, need: int = os.R_OK) -> str:
    """``"<what> <path> is not readable by user edge-agent (...): the folder /etc/edge-agent (root:root mode
    0750) cannot be entered by this user; fix: ..."``; a plain sentence when nothing on the way refuses."""
    verb = "writable" if need & os.W_OK else "readable"
    found = blocking_component(path, need)
    who = _user()
    if found is None:
        return f"{what} {path} is not {verb} by {who}"
    where, action = found
    try:
        owner = _owner(where.stat())
    except OSError:
        owner = "owner unknown"
    me = username()
    if action == "enter":
        fix = (f"let the service user's group in: sudo chgrp {me} {where} && sudo chmod g+rx {where} "
               f"(e.g. install -d -m 0750 -o root -g {me} {where})")
        return f"{what} {path} is not {verb} by {who}: the folder {where} ({owner}) cannot be entered; {fix}"
    fix = f"sudo chgrp {me} {where} && sudo chmod g+{'w' if action == 'write' else 'r'} {where}"
    return f"{what} {path} is not {verb} by {who} ({owner}); fix: {fix}"
