"""Every command line follows one contract: unknown flags are refused with exit code 2, the broker flags are
spelled the same everywhere, and every error class maps to one row of one exit-code table."""
from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from pathlib import Path

import pytest

from edge.contract import errors
from edge.contract.cli import ArgumentParser, add_mqtt_arguments, mqtt_overrides
from edge.contract.mqtt import MqttSettings

with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as fh:
    SCRIPTS = tomllib.load(fh)["project"]["scripts"]
ENTRY_POINTS = {**SCRIPTS, "python -m dashboard.homeassistant": "dashboard.homeassistant:main"}
BROKER_CLIS = ["edge-agent run", "edge-agent check", "edge-agent bench", "stream-bridge", "stream-job",
               "sigmawatch-dashboard", "python -m dashboard.homeassistant"]
MQTT_FLAGS = {"--mqtt-host", "--mqtt-port", "--mqtt-username", "--mqtt-password-file", "--mqtt-tls", "--mqtt-ca",
              "--mqtt-cert", "--mqtt-key", "--mqtt-tls-insecure", "--mqtt-client-id", "--mqtt-protocol",
              "--topic-prefix"}


def _main(name: str):
    module, func = ENTRY_POINTS[name].split(":")
    return getattr(importlib.import_module(module), func)


def _argv_prefix(cli: str) -> tuple[str, list[str]]:
    for name in sorted(ENTRY_POINTS, key=len, reverse=True):
        if cli.startswith(name):
            return name, cli[len(name):].split()
    raise KeyError(cli)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_cli_refuses_an_unknown_flag_with_exit_code_2(name, capsys):
    argv = {"edge-agent": ["check"], "stream-job": ["run"], "convert-model": ["metadata", "--model", "m.tflite"]}.get(name, [])
    assert _main(name)(argv + ["--bonded"]) == errors.UsageError.exit_code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bonded" in err and "usage:" in err, err


@pytest.mark.parametrize("cli", BROKER_CLIS)
def test_the_broker_flags_are_spelled_the_same_in_every_cli(cli, capsys):
    name, sub = _argv_prefix(cli)
    assert _main(name)(sub + ["--help"]) == 0
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", capsys.readouterr().out))
    assert MQTT_FLAGS <= shown, f"{cli} lacks {sorted(MQTT_FLAGS - shown)}"
    if cli != "sigmawatch-dashboard":      # its --host/--port are where its web page listens
        assert not {"--broker", "--host", "--port"} & shown, "old broker flag spellings"


def test_the_flags_override_the_settings_model_keys():
    p = ArgumentParser(prog="x")
    add_mqtt_arguments(p)
    args = p.parse_args(["--mqtt-host", "b.lan", "--mqtt-ca", "/ca.crt", "--mqtt-tls-insecure",
                         "--mqtt-username", "u", "--topic-prefix", "site1/cams", "--mqtt-protocol", "3.1.1"])
    s = MqttSettings.model_validate(mqtt_overrides(args))
    assert (s.host, s.port, str(s.tls.ca_file), s.tls.insecure, s.username, s.topic_prefix, s.protocol) == \
        ("b.lan", 8883, "/ca.crt", True, "u", "site1/cams", "3.1.1")
    assert MqttSettings.model_validate(mqtt_overrides(p.parse_args(["--mqtt-tls", "--mqtt-port", "1884"]))).port == 1884
    assert MqttSettings.model_validate(mqtt_overrides(p.parse_args([]))).tls is None


def test_renamed_and_secret_keys_are_refused_with_a_hint():
    with pytest.raises(ValueError, match="'prefix' was renamed to 'topic_prefix'"):
        MqttSettings.model_validate({"prefix": "x"})
    with pytest.raises(ValueError, match="plain-text 'password' is not accepted"):
        MqttSettings.model_validate({"password": "hunter2"})


def test_one_exit_code_table_covers_every_error_class():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.SigmawatchError)]
    assert len(classes) >= 15
    for cls in classes:
        assert cls.exit_code in errors.EXIT_CODES, f"{cls.__name__} exits {cls.exit_code}, which the table lacks"
    # the domain errors of every part share the table's codes
    assert errors.ModelError.exit_code == errors.InputError.exit_code
    assert errors.ToolMissingError.exit_code == errors.InterpreterError.exit_code
    assert errors.JobError.exit_code == errors.ExportError.exit_code == errors.DemoError.exit_code
    assert len({errors.UsageError.exit_code, errors.InputError.exit_code, errors.UnavailableError.exit_code,
                errors.SourceError.exit_code, errors.BrokerError.exit_code, errors.OutputError.exit_code,
                errors.FailedError.exit_code, errors.EXIT_BUG}) == 8


def test_errors_of_shared_edge_modules_are_part_of_the_hierarchy():
    from edge.model_metadata import ModelMetadataError
    from edge.runtime import RuntimeUnavailableError
    assert issubclass(ModelMetadataError, errors.ModelError)
    assert issubclass(RuntimeUnavailableError, errors.InterpreterError)


def test_systemd_units_do_not_restart_on_what_a_restart_cannot_fix(project_root):
    units = sorted((project_root / "systemd").glob("*.service"))
    assert units
    for unit in units:
        text = unit.read_text()
        found = re.search(r"^RestartPreventExitStatus=(.*)$", text, re.M)
        assert found, f"{unit.name} has no RestartPreventExitStatus"
        assert set(found.group(1).split()) == {str(errors.ConfigError.exit_code), str(errors.InputError.exit_code)}


def test_help_shows_a_default_of_zero_but_not_of_unset_flags():
    """0 == False in Python: the shared help formatter must still print '(default: 0)'."""
    import argparse

    from edge.contract.cli import HelpFormatter
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="port")
    ap.add_argument("--flag", action="store_true", help="flag")
    ap.add_argument("--name", default=None, help="name")
    text = ap.format_help()
    assert "port (default: 0)" in " ".join(text.split())
    assert "(default: False)" not in text and "(default: None)" not in text
