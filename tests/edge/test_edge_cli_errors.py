"""Bad config, missing model, wrong model, missing accelerator: clear errors and exit codes (edge.contract.errors table)."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from edge import runtime
from edge.cli import main
from edge_helpers import write_video


@pytest.fixture
def base(tmp_path, detector_model):
    video = write_video(tmp_path / "cam.avi", frames=5)
    cfg = {"device_id": "cam-1", "state_dir": str(tmp_path / "state"), "source": {"uri": str(video)},
           "model": {"path": str(detector_model)}, "mqtt": {"host": "127.0.0.1", "port": 1}}

    def write(**changes) -> str:
        data = json.loads(json.dumps(cfg))
        for dotted, value in changes.items():
            node = data
            *head, last = dotted.split("__")
            for k in head:
                node = node.setdefault(k, {})
            if value is None:
                node.pop(last, None)
            else:
                node[last] = value
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)
    return write


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_unknown_key_is_named(base, capsys):
    code, text = run(capsys, "run", "-c", base(mqtt__hots="x"))
    assert code == 2 and "mqtt.hots" in text and "unknown key" in text


def test_bad_value_is_named_with_the_value(base, capsys):
    code, text = run(capsys, "run", "-c", base(settings__score_threshold=1.5))
    assert code == 2 and "settings.score_threshold" in text and "1.5" in text


def test_plain_password_refused(base, capsys):
    code, text = run(capsys, "run", "-c", base(mqtt__password="hunter2"))
    assert code == 2 and "password_file" in text and "hunter2" not in text


def test_bad_device_id_and_missing_key(base, capsys):
    code, text = run(capsys, "run", "-c", base(device_id="cam/1"))
    assert code == 2 and "device_id" in text
    code, text = run(capsys, "run", "-c", base(model=None))
    assert code == 2 and "model" in text and "required key is missing" in text


def test_missing_config_file(tmp_path, capsys):
    code, text = run(capsys, "run", "-c", str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in text


def test_unwritable_state_dir(base, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    code, text = run(capsys, "run", "-c", base(state_dir=str(tmp_path / "a-file" / "state")))
    assert code == 2 and "outbox" in text and "state_dir" in text


def test_missing_model(base, tmp_path, capsys):
    code, text = run(capsys, "run", "-c", base(model__path=str(tmp_path / "missing.tflite")))
    assert code == 3 and "missing.tflite" in text and "does not exist" in text


def test_model_of_the_wrong_task(base, classifier_model, capsys):
    code, text = run(capsys, "run", "-c", base(model__path=str(classifier_model), model__task="detection"))
    assert code == 3 and "classification model" in text and "model.task" in text


def test_unknown_class_in_settings(base, capsys):
    code, text = run(capsys, "run", "-c", base(settings__classes=["dog"]))
    assert code == 3 and "dog" in text and "red" in text


def test_metadata_of_another_model(base, tmp_path, detector_model, classifier_model, capsys):
    # the detector's bytes with the classifier's sidecar: the content hash gives it away
    bad = tmp_path / "swapped.tflite"
    bad.write_bytes(detector_model.read_bytes()[:json.loads(detector_model.with_suffix(".json").read_text())
                                                 ["flatbuffer_size"]])
    shutil.copy(classifier_model.with_suffix(".json"), bad.with_suffix(".json"))
    code, text = run(capsys, "run", "-c", base(model__path=str(bad)))
    assert code == 3 and "hash" in text


def test_cli_flags_override_the_file(base, tmp_path, capsys):
    code, text = run(capsys, "run", "-c", base(), "--model", str(tmp_path / "other.tflite"))
    assert code == 3 and "other.tflite" in text
    code, text = run(capsys, "run", "-c", base(), "--set", "settings.iou_threshold=7")
    assert code == 2 and "settings.iou_threshold" in text


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # ai-edge-litert's Delegate.__del__
def test_edgetpu_missing_delegate_is_a_clear_error(base, monkeypatch, capsys):
    monkeypatch.setenv("SIGMAWATCH_EDGETPU_LIB", "libedgetpu-not-installed.so.1")
    code, text = run(capsys, "run", "-c", base(), "--device", "usb:1")
    assert code == 4 and "libedgetpu" in text and "usb:1" in text


def test_edgetpu_options_reach_the_delegate_loader(base, monkeypatch, capsys):
    """Up to the hardware boundary: the agent asks the runtime for the Edge TPU delegate with the right device."""
    calls = []
    real = runtime.find_runtime

    def fake_find(preferred=None):
        rt = real(preferred)

        class Module:
            Interpreter = rt.module.Interpreter

            @staticmethod
            def load_delegate(lib, options):
                calls.append((lib, options))
                raise ValueError("Failed to load delegate from libedgetpu.so.1")
        return runtime.Runtime(rt.name, rt.version, Module)

    monkeypatch.setattr("edge.engine.find_runtime", fake_find)
    monkeypatch.delenv("SIGMAWATCH_EDGETPU_LIB", raising=False)
    code, text = run(capsys, "check", "-c", base(model__device="pci:0"))
    assert calls == [("libedgetpu.so.1", {"device": "pci:0"})]
    assert code == 4 and "Edge TPU" in text


def test_bad_device_name(base, capsys):
    code, text = run(capsys, "run", "-c", base(), "--device", "gpu")
    assert code == 2 and "model.device" in text and "gpu" in text


def test_check_reports_each_part(base, tmp_path, capsys):
    code, text = run(capsys, "check", "-c", base(source__uri=str(tmp_path / "no-camera.avi")), "--timeout", "1")
    assert "ok    model" in text and "FAIL  source" in text and "FAIL  broker" in text
    assert code == 5   # the first failure decides the exit code


@pytest.mark.mqtt
def test_check_passes_with_broker(base, broker, tmp_path, capsys):
    code, text = run(capsys, "check", "-c", base(mqtt__port=broker.port))
    assert code == 0 and "all checks passed" in text and "160x120" in text and "ok    outbox" in text
    # check only looks: the state dir and the outbox database are the service's to create
    assert f"{tmp_path / 'state' / 'outbox.sqlite'} does not exist yet" in text
    assert not (tmp_path / "state").exists()
