"""The sigma-band figure of ``bench-distilled``: with ``pixels=False`` no pixel of the frame reaches the PNG (it is
published while the third-party footage is not), and the boxes, bands and labels are still drawn."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import require_module

require_module("matplotlib")

from convert.distill.evaluate_real import sigma_figure  # noqa: E402

W, H = 320, 240
# one student person (x1, y1, x2, y2 in frame fractions) with its box sigma (cx, cy, w, h), one teacher box
STUDENT = [("person", 0.8, (0.25, 0.2, 0.5, 0.8), 0.15, (0.01, 0.01, 0.04, 0.04))]
TEACHER = [("person", 0.9, (0.6, 0.2, 0.8, 0.8), None, None)]


def _frame() -> np.ndarray:
    """A frame whose every pixel is a green no drawing element uses (BGR)."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, :, 1] = 200
    return frame


def _frame_green(png: np.ndarray) -> float:
    b, g, r = (png[:, :, i].astype(int) for i in range(3))
    return float(((g > 150) & (r < 80) & (b < 80)).mean())


@pytest.mark.parametrize("pixels", [False, True])
def test_boxes_only_figure_has_no_frame_pixel_and_draws_the_boxes(tmp_path, pixels):
    out = sigma_figure(_frame(), STUDENT, TEACHER, tmp_path / "fig.png", "title", 0.3, pixels=pixels)
    png = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert png is not None
    if pixels:
        assert _frame_green(png) > 0.3          # control: with the pixels, the frame fills most of the figure
        return
    assert _frame_green(png) == 0.0
    b, g, r = (png[:, :, i].astype(int) for i in range(3))
    red = (r > 200) & (g < 60) & (b < 60)       # the student's box
    white = (r > 200) & (g > 200) & (b > 200)   # the teacher's dashed box and the caption
    assert red.sum() > 100 and white.sum() > 100
    # the student's box is left of the teacher's: red pixels sit in the left half of the canvas
    xs = np.nonzero(red)[1]
    assert xs.max() < png.shape[1] * 0.6
