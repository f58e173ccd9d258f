"""edge.preprocess.resize and the channel order of letterbox/stretch."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.preprocess import letterbox, resize, stretch


def camera_like(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, hard edges and sensor noise: what aliasing and filter differences show up on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, (xx + yy) % 64 * 4], -1)
    for _ in range(12):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(5, w // 3)), y + int(rng.integers(5, h // 3))),
                      [float(v) for v in rng.integers(0, 256, 3)], -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("src,dst", [((640, 480), (256, 192)), ((1280, 720), (256, 144)),
                                     ((1920, 1080), (416, 234)), ((641, 481), (256, 192))])
def test_downscale_stays_close_to_area_filter(src, dst):
    img = camera_like(*src)
    area = cv2.resize(img, dst, interpolation=cv2.INTER_AREA).astype(np.float32)
    linear = cv2.resize(img, dst, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    ours = resize(img, dst)
    assert ours.shape == (dst[1], dst[0], 3) and ours.dtype == np.uint8
    ours_err = np.abs(ours.astype(np.float32) - area).mean()
    linear_err = np.abs(linear - area).mean()
    # Within a third of the sensor noise (sigma 6) of the anti-aliased reference, and clearly closer to it than
    # a one-step bilinear resize (which skips source pixels when shrinking by more than 2x).
    assert ours_err < 2.0, ours_err
    assert ours_err < 0.6 * linear_err, (ours_err, linear_err)


def test_power_of_two_factor_is_the_box_mean_up_to_one_rounding_per_halving():
    img = camera_like(64, 48)
    ours = resize(img, (16, 12)).astype(np.float32)          # two 2x2 means
    box = img.astype(np.float32).reshape(12, 4, 16, 4, 3).mean(axis=(1, 3))
    assert np.abs(ours - box).max() <= 1.0 + 1e-6
    assert np.abs(ours - box).mean() < 0.35


def test_odd_integer_factor_is_the_box_mean():
    img = camera_like(45, 27)                                # odd sides: no halving
    ours = resize(img, (15, 9)).astype(np.float32)           # one 3x3 mean
    box = img.astype(np.float32).reshape(9, 3, 15, 3, 3).mean(axis=(1, 3))
    assert np.abs(ours - box).max() <= 0.5 + 1e-6


def test_upscale_and_identity():
    img = camera_like(32, 24)
    assert resize(img, (32, 24)) is img
    up = resize(img, (64, 48))
    np.testing.assert_array_equal(up, cv2.resize(img, (64, 48), interpolation=cv2.INTER_LINEAR_EXACT))


@pytest.mark.parametrize("fn", [letterbox, stretch])
def test_bgr_frame_gives_the_same_pixels_as_its_rgb_twin(fn):
    bgr = camera_like(640, 480, seed=3)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    a, info_a = fn(bgr, (256, 256), bgr=True)
    b, info_b = fn(rgb, (256, 256), bgr=False)
    np.testing.assert_array_equal(a, b)
    assert info_a == info_b
    # 4-channel and non-contiguous frames take the same path
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(fn(bgra, (256, 256), bgr=True)[0], a)
    np.testing.assert_array_equal(fn(rgb[:, :, ::-1], (256, 256), bgr=True)[0], a)
