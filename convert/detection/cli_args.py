"""Small pieces the detector subcommands share (``commands``, ``bench``): argument types and the record of
which dataset a training run used."""
from __future__ import annotations

import argparse
from pathlib import Path


def size_arg(text: str) -> tuple[int, int]:
    """'256' or '256x320' (height x width)."""
    try:
        if "x" in text:
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text), int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: use N or HxW, e.g. 256 or 256x320") from None


def write_run_data(run: Path, data: str | Path) -> None:
    """Record the dataset a run was trained on (export and bench default to it)."""
    (Path(run) / "data.txt").write_text(str(Path(data).resolve()) + "\n")


def run_data(run: Path) -> str | None:
    """The dataset recorded by :func:`write_run_data`, if any."""
    p = Path(run) / "data.txt"
    return p.read_text().strip() if p.is_file() else None
