"""Secrets from files or systemd credentials, never from the YAML.

systemd's ``LoadCredential=mqtt-password:/etc/edge-agent/mqtt-password`` copies the file into a
private, non-swappable directory readable only by the service and sets ``$CREDENTIALS_DIRECTORY``;
the agent reads ``$CREDENTIALS_DIRECTORY/mqtt-password``.
"""
from __future__ import annotations

import os
from pathlib import Path

from edge.contract.errors import SecretError


def credential_path(name: str) -> Path:
    if not name or "/" in name or name in (".", ".."):
        raise SecretError(f"credential name {name!r} is invalid: use a plain name like 'mqtt-password'")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretError(
            f"systemd credential {name!r} was requested but $CREDENTIALS_DIRECTORY is not set: start the agent "
            f"through systemd with LoadCredential={name}:/path/to/file, or use a *_file option instead")
    return Path(directory) / name


def read_secret_file(path: Path, what: str) -> str:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SecretError(f"{what}: file {path} does not exist") from None
    except PermissionError:
        raise SecretError(f"{what}: file {path} is not readable by this user (uid {os.getuid()})") from None
    value = text.splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise SecretError(f"{what}: file {path} is empty")
    return value


def resolve_password(password_file: Path | None, credential: str | None) -> str | None:
    """The MQTT password from the credential (preferred) or the file; None when neither is configured."""
    if credential:
        path = credential_path(credential)
        if path.is_file() and not path.read_bytes().strip():
            raise SecretError(
                f"mqtt.password_credential {credential!r}: the systemd credential is empty: systemd found no file "
                f"for LoadCredential={credential}:... (systemd/edge-agent.service: /etc/edge-agent/{credential}) and "
                "passed the unit's empty default (SetCredential=). Write the password into that file "
                "(sudo sh -c 'umask 077; printf %s PASSWORD > FILE'), or remove password_credential from the config "
                "for a broker without passwords")
        return read_secret_file(path, f"mqtt.password_credential {credential!r}")
    if password_file:
        return read_secret_file(password_file, "mqtt.password_file")
    return None


def resolve_key_file(key_file: Path | None, credential: str | None) -> Path | None:
    """Path of the TLS client key: the credential's file when given, else ``key_file``."""
    if credential:
        path = credential_path(credential)
        if not path.is_file():
            raise SecretError(f"mqtt.tls.key_credential {credential!r}: {path} does not exist")
        return path
    if key_file and not Path(key_file).is_file():
        raise SecretError(f"mqtt.tls.key_file: {key_file} does not exist")
    return key_file
