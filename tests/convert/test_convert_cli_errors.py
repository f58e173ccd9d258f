"""Bad inputs give a clear message naming the problem and a non-zero exit code (via main(argv))."""
from __future__ import annotations

import os

import pytest

from convert.cli import main
from edge.contract.errors import InputError, OutputError, UsageError


def run(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_unknown_architecture(tmp_path, capsys):
    rc, err = run(["export", "--arch", "resnet9", "--quantization", "float32", "--output", str(tmp_path / "m.tflite")],
                  capsys)
    assert rc == UsageError.exit_code and "unknown architecture 'resnet9'" in err and "mixnet_s" in err


def test_empty_calibration_folder(tmp_path, capsys):
    (tmp_path / "calib").mkdir()
    rc, err = run(["export", "--arch", "mixnet_s", "--input-size", "64", "--num-classes", "3",
                   "--calibration", str(tmp_path / "calib"), "--output", str(tmp_path / "m.tflite")], capsys)
    assert rc == InputError.exit_code and "contains no images" in err and str(tmp_path / "calib") in err
    assert not (tmp_path / "m.tflite").exists()


def test_corrupt_image_is_named(shapes_dataset, tmp_path, capsys):
    calib = tmp_path / "calib"
    calib.mkdir()
    good = sorted(shapes_dataset.rglob("*.png"))[:3]
    for p in good:
        (calib / p.name).write_bytes(p.read_bytes())
    (calib / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rc, err = run(["export", "--arch", "mixnet_s", "--input-size", "64", "--num-classes", "3",
                   "--calibration", str(calib), "--output", str(tmp_path / "m.tflite")], capsys)
    assert rc == InputError.exit_code and "broken.jpg" in err and "corrupt" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_output_root_skip(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    rc, err = run(["export", "--arch", "mixnet_s", "--quantization", "float32", "--output", str(ro / "m.tflite")], capsys)
    assert rc == OutputError.exit_code and "permission denied" in err


def test_output_folder_missing_and_bad_suffix(tmp_path, capsys):
    rc, err = run(["export", "--arch", "mixnet_s", "--quantization", "float32",
                   "--output", str(tmp_path / "nope" / "m.tflite")], capsys)
    assert rc == OutputError.exit_code and "does not exist" in err
    rc, err = run(["export", "--arch", "mixnet_s", "--output", str(tmp_path / "m.onnx")], capsys)
    assert rc == UsageError.exit_code and "must end in .tflite" in err


def test_output_is_a_directory_or_file_blocks_write(tmp_path, capsys):
    """An output path whose parent is a regular file cannot be written (works as root too)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = run(["export", "--arch", "mixnet_s", "--quantization", "float32",
                   "--output", str(blocker / "m.tflite")], capsys)
    assert rc == OutputError.exit_code and str(blocker) in err


def test_option_errors(tmp_path, capsys):
    out = str(tmp_path / "m.tflite")
    rc, err = run(["export", "--arch", "mixnet_s", "--input-size", "64", "--output", out], capsys)
    assert rc == UsageError.exit_code and "needs --calibration" in err
    rc, err = run(["export", "--arch", "mixnet_s", "--quantization", "float16", "--edgetpu", "--output", out], capsys)
    assert rc == UsageError.exit_code and "--edgetpu needs" in err
    rc, err = run(["export", "--arch", "mixnet_s", "--weights", str(tmp_path / "w.h5"), "--quantization",
                   "float32", "--input-size", "64", "--output", out], capsys)
    assert rc == InputError.exit_code and "w.h5 does not exist" in err
    rc, err = run(["export", "--arch", "mobilenetv3_small", "--input-size", "16", "--quantization", "float32",
                   "--output", out], capsys)
    assert rc == UsageError.exit_code and "at least 32" in err
    assert main(["no-such-command"]) == 2
    rc, err = run(["train", "--data", str(tmp_path), "--arch", "mixnet_s", "--output", str(tmp_path / "m.keras")], capsys)
    assert rc == InputError.exit_code and "one sub-folder per class" in err
