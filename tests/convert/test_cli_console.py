"""What a user of ``convert-model`` sees on the console (issue 19, item 4), through real ``python -m convert.cli``
processes: quiet by default (no TensorFlow/absl/interpreter lines, no Keras UserWarning) and loud with ``-v``;
each warning once; the calibration split said; a progress bar on a terminal, also one that reports no size;
defaults in every ``--help``; ``list`` and ``export`` agree on the hard-swish default; next-step commands after
an export that work as printed."""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import shlex
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from convert.cli import build_parser
from convert.cli_help import show_default

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("W0000", "I0000", "absl::InitializeLog", "Created TensorFlow Lite XNNPACK delegate", "fully_quantize",
         "UserWarning", "oneDNN", "cpu_feature_guard", "tf_tfl_flatbuffer_helpers")


def cli_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    env["PYTHONPATH"] = str(ROOT)
    env["TF_NUM_INTRAOP_THREADS"] = "1"
    return env


def convert_model(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convert.cli", *args], capture_output=True, text=True, check=False,
                          cwd=ROOT, env=cli_env(), timeout=timeout)


def in_pty(argv: list[str], columns: int, rows: int, timeout: float = 300) -> tuple[int, str]:
    """Run ``argv`` with stdin/stdout/stderr on a pseudo-terminal of the given size (0 x 0: a terminal that
    reports no size, as some CI runners and ``docker exec -t`` give). Returns (exit code, everything written)."""
    pid, fd = pty.fork()
    if pid == 0:                                     # the child: exec, never return into pytest
        try:
            os.chdir(ROOT)
            os.execvpe(argv[0], argv, cli_env())
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:                              # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny trained-looking classifier with a hard-swish (.keras + manifest) and 12 calibration images."""
    import keras

    from convert.models.layers import HardSwish
    root = tmp_path_factory.mktemp("console")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 64.0, offset=-2.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = HardSwish()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    keras.Model(inputs, outputs, name="tiny").save(root / "tiny.keras")
    (root / "tiny.keras.json").write_text(json.dumps({"architecture": "tiny", "input_size": [32, 32],
                                                      "labels": ["x", "y", "z"], "resize": "stretch"}))
    rng = np.random.default_rng(1)
    np.savez(root / "calib.npz", images=rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8))
    return {"model": root / "tiny.keras", "calib": root / "calib.npz", "root": root}


def export_args(tiny, out: str, *extra: str) -> list[str]:
    return ["export", "--model", str(tiny["model"]), "--calibration", str(tiny["calib"]),
            "--output", str(tiny["root"] / out), *extra]


@pytest.fixture(scope="module")
def quiet_export(tiny) -> subprocess.CompletedProcess:
    done = convert_model(*export_args(tiny, "quiet.tflite"))
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_quiet_by_default_and_each_warning_once(quiet_export):
    both = quiet_export.stdout + quiet_export.stderr
    assert not [n for n in NOISE if n in both], both
    # 12 images, 1 in 5 held out: the split is said, and the warning about too few images comes once
    assert ("calibration: 10 of 12 images from" in quiet_export.stdout
            and "used for calibration, 2 held out for the int8 fidelity check" in quiet_export.stdout)
    assert both.count("fewer than the 100 calibration images recommended") == 1, both
    assert "pass about 120 or more" in both           # 100 for calibration + the 1 in 5 held out
    assert "calibration           10 of 12 images, 2 held out for the fidelity check" in quiet_export.stdout


def test_verbose_shows_the_libraries_own_lines(tiny):
    done = convert_model("-v", *export_args(tiny, "loud.tflite"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [n for n in NOISE if n in done.stderr], done.stderr[-3000:]


def test_a_failure_is_one_clear_line(tiny, capsys):
    """Quiet mode does not swallow the error: a corrupt .keras is named, exit 3, no traceback."""
    from convert.cli import main
    bad = tiny["root"] / "bad.keras"
    bad.write_bytes(b"not a zip")
    (tiny["root"] / "bad.keras.json").write_text((tiny["root"] / "tiny.keras.json").read_text())
    assert main(["export", "--model", str(bad), "--calibration", str(tiny["calib"]), "--output",
                 str(tiny["root"] / "bad.tflite")]) == 3
    err = capsys.readouterr().err
    assert "cannot be loaded as a Keras model" in err and "Traceback" not in err, err


@pytest.mark.parametrize("columns,rows", [(0, 0), (120, 40)], ids=["terminal-without-size", "terminal-120x40"])
def test_calibration_progress_bar_on_a_terminal(tiny, columns, rows):
    code, text = in_pty([sys.executable, "-m", "convert.cli", *export_args(tiny, f"pty{columns}.tflite")],
                        columns, rows)
    assert code == 0, text[-3000:]
    assert "int8 calibration:" in text and "/10 [" in text and "%|" in text, text[-3000:]
    assert "int8 calibration (own ranges):" in text, text[-3000:]      # the second pass over the images
    assert not [n for n in NOISE if n in text], text[-3000:]


def test_every_default_is_shown_in_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, p in sub.choices.items():
        formatter = p._get_formatter()
        for action in p._actions:
            default = action.default
            if (not action.option_strings or default is None or default is argparse.SUPPRESS
                    or isinstance(default, bool)):
                continue
            block = " ".join(formatter._format_action(action).split())
            if "default" not in block or show_default(default) not in block:
                missing.append(f"{name} {action.option_strings[-1]} ({default!r}): {block}")
    assert not missing, "\n".join(missing)


def test_help_of_a_subcommand_shows_defaults_in_the_options_spelling():
    done = convert_model("train-detector", "--help")
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "--input-size INPUT_SIZE default: 256 " in text and "--epochs EPOCHS default: 30 " in text
    assert "--seed SEED default: 0 " in text and "(256, 256)" not in text
    assert "--lr LR default: 0.002 " in text and "--clip-norm CLIP_NORM fixed global gradient-norm clip; 0 = none " \
        "(default: 10.0)" in text


def test_list_and_export_agree_on_the_hard_swish_default(quiet_export, capsys):
    from convert.cli import main
    from convert.export.formulations import resolve
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("mobilenetv3_small"))
    export_default = next(a.default for a in build_parser()._subparsers._group_actions[0].choices["export"]._actions
                          if "--hard-swish" in a.option_strings)
    assert f"export --hard-swish {export_default} (int8 {resolve(export_default, 'int8')}" in line, line
    assert f"float {resolve(export_default, 'float32')}" in line and "hard_swish=native" not in line
    # and what an int8 export with that default actually built
    assert f"[hard-swish: {resolve(export_default, 'int8')}]" in quiet_export.stdout


def test_next_steps_after_export_work_as_printed(quiet_export, tiny):
    """Each hinted command parses with its program's own parser; the benchmark and the agent's check run."""
    from edge.cli import build_parser as edge_parser
    lines = quiet_export.stdout.split("next:\n", 1)[1].splitlines()
    commands = [shlex.split(line.split(": ", 1)[1]) for line in lines if line.startswith("  ")]
    assert [c[:2] for c in commands] == [["edge-agent", "run"], ["edge-agent", "check"], ["python", "-m"]], commands
    model = str(tiny["root"] / "quiet.tflite")
    for argv in commands:
        assert model in argv
        if argv[0] == "edge-agent":
            edge_parser().parse_args(argv[1:])
    bench = subprocess.run([sys.executable, *commands[2][1:], "--runs", "3", "--rounds", "1", "--threads", "1"],
                           capture_output=True, text=True, check=False, cwd=ROOT, env=cli_env(), timeout=120)
    assert bench.returncode == 0 and "quiet.tflite" in bench.stdout, bench.stderr
    import cv2
    frame = tiny["root"] / "frame.png"
    cv2.imwrite(str(frame), np.full((48, 64, 3), 90, np.uint8))
    # the agent's own check of the hinted command (a still image as the camera, no broker on port 1)
    check = subprocess.run([sys.executable, "-m", "edge.cli", *commands[1][1:], "--source", str(frame),
                            "--state-dir", str(tiny["root"] / "state"), "--mqtt-port", "1", "--timeout", "1"],
                           capture_output=True, text=True, check=False, cwd=ROOT, env=cli_env(), timeout=120)
    model_line = next((l for l in check.stdout.splitlines() if "model:" in l), "")
    assert model_line.startswith("ok") and "(classification, input 32x32, 3 labels)" in model_line, check.stdout


def test_python_dash_m_convert_cli_runs():
    done = convert_model("--version")
    assert done.returncode == 0 and done.stdout.startswith("convert-model ")


def test_synth_says_how_to_train_on_what_it_wrote(tmp_path, capsys):
    from convert.cli import main
    assert main(["synth", "--out", str(tmp_path / "d"), "--train", "2", "--val", "1", "--size", "64"]) == 0
    hint = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("next: "))
    argv = shlex.split(hint[len("next: "):])
    assert argv[:2] == ["convert-model", "train-detector"]
    args = build_parser().parse_args(argv[1:])
    assert args.data == str(tmp_path / "d") and tuple(args.input_size) == (64, 64)


def test_quiet_native_output_keeps_python_output_and_hides_descriptor_2():
    """The mechanism alone, in a plain process: C-level writes to fd 2 go to the log (kept only for a failure
    whose message names it); print(), logging set up before the swap, warnings and tqdm still reach the real
    stderr."""
    script = """
import logging, os, sys, warnings
from convert.console import quiet_native_output, progress
logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
with quiet_native_output(True) as log:
    os.write(2, b"NATIVE-LINE\\n")
    print("PRINTED", file=sys.stderr)
    logging.getLogger("x").warning("LOGGED")
    warnings.warn("WARNED")
    for _ in progress(range(2), desc="BAR"):
        pass
print("LOG-DELETED" if log.path is None else "LOG-KEPT", file=sys.stderr)
try:
    with quiet_native_output(True) as log:
        os.write(2, b"NATIVE-BEFORE-FAILURE\\n")
        log.keep = True
        raise ValueError("boom")
except ValueError:
    print("KEPT:" + log.path.read_text().strip(), file=sys.stderr)
    log.path.unlink()
try:
    with quiet_native_output(True) as other:
        os.write(2, b"NOT-POINTED-AT\\n")
        raise ValueError("a failure nobody names the log for")
except ValueError:
    print("UNKEPT" if other.path is None else "KEPT-WRONGLY", file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=ROOT,
                          env=cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "NATIVE-LINE" not in err and "LOG-DELETED" in err
    assert "PRINTED" in err and "WARNING: LOGGED" in err and "WARNED" in err and "BAR" in err
    assert "KEPT:NATIVE-BEFORE-FAILURE" in err and "UNKEPT" in err


def test_failed_export_names_the_libraries_log(tmp_path):
    """An export that fails (exit 8) keeps TensorFlow's own output of the run and says where it is. The failure
    here is real: a darknet weights file whose batch-norm variances are negative (a corrupt file) gives NaN
    activations, and the converter leaves the graph in float."""
    from synthetic import DARKNET_SMALL_CFG

    from convert.detection.darknet import parse_cfg, plan, write_weights
    from convert.detection.synthetic import write_dataset
    (tmp_path / "small.cfg").write_text(DARKNET_SMALL_CFG)
    values = np.random.default_rng(0).normal(0, 0.1, plan(parse_cfg(DARKNET_SMALL_CFG)).weight_count)
    values[12:16] = -np.abs(values[12:16]) - 0.5
    write_weights(tmp_path / "small.weights", values.astype(np.float32))
    write_dataset(tmp_path / "data", train=4, val=1, width=64, height=64, seed=0)
    done = convert_model("import-darknet", "--cfg", str(tmp_path / "small.cfg"), "--weights",
                         str(tmp_path / "small.weights"), "--output", str(tmp_path / "x.tflite"), "--calib-data",
                         str(tmp_path / "data"), "--calib-images", "4")
    assert done.returncode == 8, done.stderr
    assert "int8 export left float ops" in done.stderr
    kept = done.stderr.split("TensorFlow's own output of this run is in ", 1)[1].split(" (last lines", 1)[0]
    log = Path(kept)
    try:
        assert log.is_file() and log.stat().st_size > 0
        assert not [n for n in NOISE if n in done.stderr.split("TensorFlow's own output")[0]]
    finally:
        log.unlink(missing_ok=True)
