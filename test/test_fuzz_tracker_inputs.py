"""Fuzzing the Tracker's input validation (hypothesis): images of any dtype, shape and size,
boxes with NaN / inf / huge / zero / negative values or outside the image.

"A clear error" means exactly: a ValueError whose message names the problem (the word checked
below). Any other exception, or a result that breaks the API's promises (box of 4 finite
floats, w, h >= 0, score in [0, 1]), fails. Hangs fail on hypothesis' per-example deadline
(profile "ckd-ci" in test/conftest.py) and on the pytest timeout below. The expected outcome of
every input is worked out here from the documented rules, not by calling the code under test.

A tiny random-weights model (preset ckd_tiny_mce) keeps a forward at a few milliseconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ckd_core.config import load_config
from ckd_core.model import build_inference_model
from ckd_core.tracking import Tracker, TrackState
from ckd_core.tracking.tracker import check_image
from fuzz_rules import init_box_problem

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("one_torch_thread")]

GREY = 90  # mid-grey frames: "ok" health, so update really runs the model


@pytest.fixture(scope="module")
def tracker():
    cfg = load_config("ckd_tiny_mce")
    return Tracker(build_inference_model(cfg.model), cfg)


def frame(h, w, value=GREY, channels=3):
    shape = (h, w) if channels is None else (h, w, channels)
    img = np.full(shape, value, np.uint8)
    img[h // 3:h // 3 + max(1, h // 4), w // 3:w // 3 + max(1, w // 4)] = 240  # a target
    return img


def assert_result(r):
    """What every TrackResult promises, whatever the input was."""
    assert len(r.box_xywh) == 4 and all(isinstance(v, float) for v in r.box_xywh)
    assert all(math.isfinite(v) for v in r.box_xywh), r.box_xywh
    assert r.box_xywh[2] >= 0 and r.box_xywh[3] >= 0
    assert 0.0 <= r.score <= 1.0 and isinstance(r.state, TrackState)
    assert set(r.health) == {"rgb", "thermal"}


# --- check_image ---------------------------------------------------------------------------

DTYPES = [np.uint8, np.int8, np.uint16, np.int32, np.float32, np.float64, np.bool_]
arrays = hnp.arrays(
    dtype=st.sampled_from(DTYPES),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
not_arrays = st.one_of(st.none(), st.integers(), st.text(max_size=3),
                       st.lists(st.lists(st.integers(0, 255), max_size=3), max_size=3))


def expected_image_problem(image) -> str | None:
    """The word the ValueError must contain, or None when the image is valid."""
    if not isinstance(image, np.ndarray):
        return "numpy array"
    if image.dtype != np.uint8:
        return "dtype"
    if image.ndim not in (2, 3) or 0 in image.shape[:2]:
        return "shape"
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        return "channels"
    return None


@settings(max_examples=200)
@given(image=st.one_of(arrays, not_arrays))
def test_check_image_returns_rgb_or_names_the_problem(image):
    problem = expected_image_problem(image)
    if problem is not None:
        with pytest.raises(ValueError, match=f"thermal image .*{problem}"):
            check_image(image, "thermal")
        return
    out = check_image(image, "thermal")
    h, w = image.shape[:2]
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    grey = image.reshape(h, w, -1)
    for c in range(3):  # 1 channel is repeated; 3 channels are kept as they are
        np.testing.assert_array_equal(out[:, :, c], grey[:, :, c if grey.shape[2] == 3 else 0])


# --- init: boxes ----------------------------------------------------------------------------

hostile_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),                 # anything, incl. 1e308
    st.floats(-20, 100, allow_nan=False),                           # near the image
    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, -1.0, 1.0, 64.0, 48.0, 1e12]))
boxes = st.tuples(hostile_floats, hostile_floats, hostile_floats, hostile_floats)
not_boxes = st.one_of(
    st.none(), st.integers(), st.text(alphabet="bcdxyz ,", max_size=8),
    st.lists(st.floats(0, 10), max_size=6).filter(lambda v: len(v) != 4),
    st.tuples(st.text(alphabet="bcdxyz", min_size=1), st.floats(), st.floats(), st.floats()))


def expected_box_problem(box, image_w, image_h) -> str | None:
    """A regex the refusal must match, or None when the box is valid."""
    if not isinstance(box, tuple) or len(box) != 4 or any(isinstance(v, str) for v in box):
        return "init box .*(four|values)"
    return init_box_problem(box, image_w, image_h, "init box")


@settings(max_examples=300)
@given(box=st.one_of(boxes, boxes, not_boxes),
       size=st.sampled_from([(48, 64), (1, 1), (1, 7), (9, 1)]))
@example(box=(-1e308, 0.0, 1.7e308, 10.0), size=(48, 64))  # finite, overlaps, absurdly wide
@example(box=(0.0, 0.0, 1e12, 1e12), size=(48, 64))
@example(box=(0.0, 0.0, 1e-300, 1e-300), size=(48, 64))
@example(box=(0.0, 0.0, 64.0, 48.0), size=(48, 64))
def test_init_box_is_taken_or_refused_clearly(tracker, box, size):
    h, w = size
    problem = expected_box_problem(box, w, h)
    if problem is not None:
        with pytest.raises(ValueError, match=problem):
            tracker.init(frame(h, w), frame(h, w, channels=None), box)
        return
    tracker.init(frame(h, w), frame(h, w, channels=None), box)
    assert tracker.is_initialized and tracker.box == tuple(float(v) for v in box)


@st.composite
def valid_boxes(draw, image_w, image_h):
    """Boxes the rules accept: any size up to the image, anywhere overlapping it."""
    w = draw(st.floats(1e-6, image_w))
    h = draw(st.floats(1e-6, image_h))
    x = draw(st.floats(-w, image_w, exclude_min=True, exclude_max=True))
    y = draw(st.floats(-h, image_h, exclude_min=True, exclude_max=True))
    return x, y, w, h


@settings(max_examples=30)
@given(data=st.data(), size=st.sampled_from([(48, 64), (1, 1), (2, 3), (20, 1)]))
def test_update_after_any_accepted_init_gives_a_sane_result(tracker, data, size):
    h, w = size
    box = data.draw(valid_boxes(w, h), label="box")
    assert expected_box_problem(box, w, h) is None
    tracker.init(frame(h, w), frame(h, w), box)
    for _ in range(2):  # the second update starts from the first one's (clipped) box
        assert_result(tracker.update(frame(h, w), frame(h, w)))


# --- update: images -------------------------------------------------------------------------

INIT_H, INIT_W = 48, 64
update_images = st.one_of(
    st.none(),
    st.builds(frame, st.just(INIT_H), st.just(INIT_W), st.integers(0, 255),
              st.sampled_from([None, 1, 3])),                       # valid, same size
    st.builds(frame, st.integers(1, 70), st.integers(1, 90), st.integers(0, 255),
              st.sampled_from([None, 3])),                          # valid, any size
    arrays, not_arrays)


@settings(max_examples=120)
@given(rgb=update_images, thermal=update_images)
@example(rgb=None, thermal=None)
@example(rgb=frame(1, 1), thermal=frame(1, 1))
def test_update_takes_any_pair_or_refuses_clearly(tracker, rgb, thermal):
    tracker.init(frame(INIT_H, INIT_W), frame(INIT_H, INIT_W), (20.0, 14.0, 16.0, 12.0))
    before = tracker.box
    rgb_problem = None if rgb is None else expected_image_problem(rgb)
    thermal_problem = None if thermal is None else expected_image_problem(thermal)
    if rgb_problem or thermal_problem:  # RGB is checked first
        match = (f"RGB image .*{rgb_problem}" if rgb_problem else
                 f"thermal image .*{thermal_problem}")
        with pytest.raises(ValueError, match=match):
            tracker.update(rgb, thermal)
        return
    # The reference camera is RGB (the default): the thermal frame is resized to it, so only
    # the reference frame's size must match the size at init.
    ref = rgb if rgb is not None else thermal
    if ref is not None and ref.shape[:2] != (INIT_H, INIT_W):
        with pytest.raises(ValueError, match="frame size changed from 64x48"):
            tracker.update(rgb, thermal)
        return
    r = tracker.update(rgb, thermal)
    assert_result(r)
    if ref is None:
        assert r.state == TrackState.LOST and r.box_xywh == before
        assert r.health == {"rgb": "missing", "thermal": "missing"}


def test_update_before_init_is_a_runtime_error(tracker):
    tracker.reset()
    with pytest.raises(RuntimeError, match="before init"):
        tracker.update(frame(INIT_H, INIT_W), None)


# --- extreme sizes: a few explicit examples (no 10000 x 10000 x 3 allocation per example) -----

def huge(h, w, value=GREY):
    """A read-only (h, w, 3) uint8 image that costs no memory (zero strides)."""
    return np.broadcast_to(np.uint8(value), (h, w, 3))


@pytest.mark.parametrize("h, w, box", [
    (10000, 10000, (5000.0, 5000.0, 40.0, 30.0)),
    (10000, 10000, (-10.0, -10.0, 20.0, 20.0)),   # corner, partly outside
    (1, 10000, (9990.0, 0.0, 10.0, 1.0)),
    (10000, 1, (0.0, 0.0, 1.0, 10000.0)),
])
def test_extreme_image_sizes_track(tracker, h, w, box):
    img = huge(h, w)
    tracker.init(img, img, box)
    r = tracker.update(img, img)
    assert_result(r)
    assert r.health == {"rgb": "ok", "thermal": "ok"}


def test_a_box_larger_than_a_huge_image_is_refused_quickly(tracker):
    img = huge(10000, 10000)
    with pytest.raises(ValueError, match="larger than the 10000x10000 image"):
        tracker.init(img, None, (-5e7, 0.0, 1e8, 1e8))
    with pytest.raises(ValueError, match="outside the 10000x10000 image"):
        tracker.init(img, None, (10000.0, 0.0, 5.0, 5.0))
