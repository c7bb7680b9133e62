"""Training-pair sampler: shared crop box, joint augmentation, jitter-free geometry, pad masks,
valid-frame rules, determinism and worker independence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ckd_core.config import DataConfig, ModelConfig
from ckd_core.crops import sample_target
from ckd_core.data.sampling import PairDataset, flip_box, jitter_box, make_loader
from ckd_core.data.sequences import Sequence, open_sequence
from ckd_core.imaging import IMAGENET_MEAN, IMAGENET_STD

H, W = 80, 96
MODEL = ModelConfig(template_size=32, search_size=64)
NO_AUG = DataConfig(max_gap=5, grayscale_prob=0.0, flip_prob=0.0, brightness_jitter=0.0)
ITEM_KEYS = {"template_rgb", "template_tir", "search_rgb", "search_tir", "template_box",
             "search_box", "template_pad_mask", "search_pad_mask", "sequence", "template_frame",
             "search_frame", "flipped"}


def pixels(t: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet normalisation: (3, S, S) -> (S, S, 3) float pixel values 0..255."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((t * std + mean) * 255).permute(1, 2, 0).numpy().astype(np.float64)


def textures(n: int, seed: int = 0, lo: int = 20, hi: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi, (H, W, 3)).astype(np.uint8) for _ in range(n)]


def write_sequence(root: Path, name: str, rgb: list[np.ndarray], tir: list[np.ndarray],
                   boxes) -> Sequence:
    """A generic-layout sequence with lossless PNG frames (arrays in RGB order)."""
    seq = root / name
    for folder, frames in (("rgb", rgb), ("thermal", tir)):
        (seq / folder).mkdir(parents=True)
        for i, img in enumerate(frames):
            assert cv2.imwrite(str(seq / folder / f"{i:04d}.png"), img[:, :, ::-1])
    (seq / "groundtruth.txt").write_text(
        "".join(",".join(f"{v:g}" for v in b) + "\n" for b in boxes))
    return open_sequence("generic", seq)


def moving_boxes(n: int) -> list[tuple[float, float, float, float]]:
    return [(30 + 2 * i, 25 + i, 16 + i % 3, 12 + i % 2) for i in range(n)]


@pytest.fixture
def textured(tmp_path) -> Sequence:
    """Thermal = 255 - RGB, pixel for pixel: a crop pair cut with one box keeps that relation."""
    rgb = textures(8)
    return write_sequence(tmp_path, "textured", rgb, [255 - f for f in rgb], moving_boxes(8))


def test_item_shapes_and_types(textured):
    ds = PairDataset([textured], DataConfig(), ModelConfig(), samples_per_epoch=3, seed=0)
    item = ds[0]
    assert set(item) == ITEM_KEYS and len(ds) == 3
    for k, size in (("template", 128), ("search", 256)):
        for m in ("rgb", "tir"):
            assert item[f"{k}_{m}"].shape == (3, size, size)
            assert item[f"{k}_{m}"].dtype == torch.float32
        assert item[f"{k}_box"].shape == (4,) and item[f"{k}_box"].dtype == torch.float32
        assert item[f"{k}_pad_mask"].shape == (size, size)
        assert item[f"{k}_pad_mask"].dtype == torch.bool
    assert item["sequence"] == "textured"
    assert 0 < item["search_frame"] - item["template_frame"] <= 200
    with pytest.raises(IndexError):
        ds[3]


def test_rgb_and_thermal_are_cut_with_the_same_box(textured):
    data = replace(NO_AUG, flip_prob=0.5)
    ds = PairDataset([textured], data, MODEL, samples_per_epoch=6, seed=3)
    for i in range(len(ds)):
        item = ds[i]
        for k in ("template", "search"):
            rgb, tir = pixels(item[f"{k}_rgb"]), pixels(item[f"{k}_tir"])
            # Stay clear of the padding edge, where bilinear resizing mixes in zeros.
            pad = item[f"{k}_pad_mask"].numpy().astype(np.uint8)
            inside = cv2.dilate(pad, np.ones((5, 5), np.uint8)) == 0
            assert inside.sum() > 100
            np.testing.assert_allclose((rgb + tir)[inside], 255.0, atol=1.01)
    # The relation has teeth: two different crops of the texture do not satisfy it.
    a, b = ds[0], ds[1]
    assert np.abs(pixels(a["search_rgb"]) + pixels(b["search_tir"]) - 255).mean() > 20


def test_flip_mirrors_both_modalities_and_the_boxes(tmp_path):
    n = 6
    rgb = textures(n, seed=1)
    tir = [np.roll(f, 7, axis=1)[:, :, ::-1].copy() for f in textures(n, seed=2)]
    boxes = moving_boxes(n)
    plain = write_sequence(tmp_path, "plain", rgb, tir, boxes)
    mirrored = write_sequence(tmp_path, "mirrored", [f[:, ::-1] for f in rgb],
                              [f[:, ::-1] for f in tir], [flip_box(b, W) for b in boxes])
    data = DataConfig(max_gap=3, grayscale_prob=0.0, brightness_jitter=0.0)
    flipped = PairDataset([plain], replace(data, flip_prob=1.0), MODEL, 4, seed=5)
    reference = PairDataset([mirrored], replace(data, flip_prob=0.0), MODEL, 4, seed=5)
    unflipped = PairDataset([plain], replace(data, flip_prob=0.0), MODEL, 4, seed=5)
    for i in range(4):
        a, b, c = flipped[i], reference[i], unflipped[i]
        assert a["flipped"] and not b["flipped"]
        for k in ("template_rgb", "template_tir", "search_rgb", "search_tir",
                  "template_pad_mask", "search_pad_mask"):
            assert torch.equal(a[k], b[k]), k
        for k in ("template_box", "search_box"):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
        assert not torch.equal(a["search_tir"], c["search_tir"])
        assert not torch.equal(a["search_rgb"], c["search_rgb"])


def test_flip_box_is_the_pixel_mirror():
    np.testing.assert_array_equal(flip_box((10, 5, 20, 8), 96), (66, 5, 20, 8))
    np.testing.assert_array_equal(flip_box(flip_box((3.5, 1, 2, 2), 40), 40), (3.5, 1, 2, 2))


def test_without_jitter_the_target_sits_at_the_crop_centre(textured):
    model = ModelConfig(template_size=32, search_size=64)
    data = replace(NO_AUG, search_scale_jitter=0.0, search_center_jitter=0.0)
    ds = PairDataset([textured], data, model, samples_per_epoch=4, seed=11)
    for i in range(len(ds)):
        item = ds[i]
        for k, frame_key, factor, size in (("template", "template_frame", 2.0, 32),
                                           ("search", "search_frame", 4.0, 64)):
            frame = item[frame_key]
            x, y, w, h = textured.gt_rgb[frame]
            side = np.ceil(np.sqrt(w * h) * factor)
            rf = size / side
            # box_in_crop: centre at (size - 1) / 2, size = box * resize_factor, normalised.
            bw, bh = w * rf, h * rf
            expected = np.array([(size - 1) / 2 - bw / 2, (size - 1) / 2 - bh / 2, bw, bh]) / size
            np.testing.assert_allclose(item[f"{k}_box"].numpy(), expected, atol=1e-6)
            rgb, _ = textured.frame(frame)
            crop = sample_target(rgb, (x, y, w, h), factor, size)
            np.testing.assert_allclose(pixels(item[f"{k}_rgb"]), crop.image, atol=1e-3)
            np.testing.assert_array_equal(item[f"{k}_pad_mask"].numpy(), crop.pad_mask)


def test_search_jitter_follows_ostrack():
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    out = jitter_box((10, 20, 30, 40), 0.25, 3.0, rng_a)
    scale = np.exp(rng_b.standard_normal(2) * 0.25)
    w, h = 30 * scale[0], 40 * scale[1]
    centre = np.array([25, 40]) + np.sqrt(w * h) * 3.0 * (rng_b.random(2) - 0.5)
    np.testing.assert_allclose(out, [centre[0] - w / 2, centre[1] - h / 2, w, h])
    np.testing.assert_array_equal(jitter_box((10, 20, 30, 40), 0, 0, rng_a), (10, 20, 30, 40))


def test_pad_masks_at_the_image_borders(tmp_path):
    frames = textures(2, lo=20, hi=200)
    model = ModelConfig(template_size=64, search_size=128)
    data = DataConfig(max_gap=1, search_scale_jitter=0.0, search_center_jitter=0.0,
                      grayscale_prob=0.0, flip_prob=0.0, brightness_jitter=0.0)
    s = 128
    rows, cols = np.mgrid[0:s, 0:s]
    # Top-left corner: side 32, x1 = y1 = round(4 - 16) = -12, so 12 of 32 px are padding.
    corner = write_sequence(tmp_path, "corner", frames, frames, [(0, 0, 8, 8)] * 2)
    item = PairDataset([corner], data, model, 1, seed=0)[0]
    expected = (rows < 48) | (cols < 48)
    np.testing.assert_array_equal(item["search_pad_mask"].numpy(), expected)
    px = pixels(item["search_rgb"])
    assert np.abs(px[(rows < 44) | (cols < 44)]).max() < 1e-3  # zero padding
    assert px[(rows >= 52) & (cols >= 52)].min() > 15  # the image (values >= 20)
    # Bottom-right corner (W x H = 96 x 80): x1 = round(92 - 16) = 76, x2 = 108 > 96;
    # OSTrack pads x2 - W + 1 = 13 columns (one more than needed), keeping 19 image columns.
    far = write_sequence(tmp_path, "far", frames, frames, [(88, 72, 8, 8)] * 2)
    item = PairDataset([far], data, model, 1, seed=0)[0]
    # y1 = round(76 - 16) = 60, y2 = 92: 80 - 60 - 1 = 19 image rows, 13 padded.
    expected = (rows >= 19 * 4) | (cols >= 19 * 4)
    np.testing.assert_array_equal(item["search_pad_mask"].numpy(), expected)
    # Well inside the image: no padding at all.
    middle = write_sequence(tmp_path, "middle", frames, frames, [(40, 32, 8, 8)] * 2)
    item = PairDataset([middle], data, model, 1, seed=0)[0]
    assert not item["search_pad_mask"].any() and not item["template_pad_mask"].any()


def test_only_valid_frames_within_max_gap(tmp_path):
    n = 24
    boxes = moving_boxes(n)
    invalid = {5, 6, 7, 8, 9, 10, 17}
    boxes = [(0, 0, 0, 0) if i in invalid else b for i, b in enumerate(boxes)]
    boxes[17] = (30, 30, 10, 0)  # zero height: out of view too
    frames = textures(n)
    seq = write_sequence(tmp_path, "gaps", frames, frames, boxes)
    data = replace(NO_AUG, max_gap=3)
    ds = PairDataset([seq], data, MODEL, samples_per_epoch=60, seed=2)
    valid = set(range(n)) - invalid
    # Frame 4's next valid frame is 11 (> 3 away) and 23 has none after it: never templates.
    allowed_templates = {t for t in valid if any(t < s <= t + 3 for s in valid)}
    assert 4 not in allowed_templates and 23 not in allowed_templates
    seen = set()
    for i in range(len(ds)):
        t, s = ds[i]["template_frame"], ds[i]["search_frame"]
        assert t in allowed_templates and s in valid and 0 < s - t <= 3
        seen.add(t)
    assert len(seen) >= 8  # the draws cover the allowed templates, not one frame


def test_sparse_ground_truth_samples_annotated_frames(tmp_path):
    seq_dir = tmp_path / "uav1"
    n = 41
    for folder in ("rgb", "ir"):
        (seq_dir / folder).mkdir(parents=True)
        for i, img in enumerate(textures(n)):
            cv2.imwrite(str(seq_dir / folder / f"{i:06d}.png"), img)
    rows = "".join(" ".join(map(str, b)) + "\n" for b in moving_boxes(5))
    (seq_dir / "rgb.txt").write_text(rows)
    (seq_dir / "ir.txt").write_text(rows)
    seq = open_sequence("vtuav", seq_dir)
    ds = PairDataset([seq], replace(NO_AUG, max_gap=20), MODEL, samples_per_epoch=20, seed=0)
    for i in range(len(ds)):
        t, s = ds[i]["template_frame"], ds[i]["search_frame"]
        assert t % 10 == 0 and s % 10 == 0 and 0 < s - t <= 20


def test_deterministic_given_seed_epoch_and_index(textured):
    data = DataConfig(max_gap=5)
    a = PairDataset([textured], data, MODEL, samples_per_epoch=4, seed=7)
    b = PairDataset([textured], data, MODEL, samples_per_epoch=4, seed=7)
    for i in (3, 0, 2):  # any order
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) if torch.is_tensor(x[k]) else x[k] == y[k]
                   for k in ITEM_KEYS)
    assert a.for_epoch(0)[1]["search_rgb"].equal(a[1]["search_rgb"])
    other_epoch = a.for_epoch(1)
    assert other_epoch.epoch == 1 and a.epoch == 0
    assert not torch.equal(other_epoch[1]["search_rgb"], a[1]["search_rgb"])
    other_seed = PairDataset([textured], data, MODEL, samples_per_epoch=4, seed=8)
    assert not torch.equal(other_seed[1]["search_rgb"], a[1]["search_rgb"])


def test_loader_batches_do_not_depend_on_workers(textured):
    ds = PairDataset([textured], DataConfig(max_gap=5), MODEL, samples_per_epoch=6, seed=1)
    serial = list(make_loader(ds, batch_size=3, num_workers=0, seed=0))
    parallel = list(make_loader(ds, batch_size=3, num_workers=2, seed=0))
    assert len(serial) == len(parallel) == 2
    for x, y in zip(serial, parallel):
        assert x["search_rgb"].shape == (3, 3, 64, 64)
        for k in ITEM_KEYS:
            if torch.is_tensor(x[k]):
                assert torch.equal(x[k], y[k]), k
            else:
                assert x[k] == y[k], k


def test_grayscale_and_brightness_are_shared_by_both_modalities(textured):
    base = replace(NO_AUG, max_gap=5)
    gray = PairDataset([textured], replace(base, grayscale_prob=1.0), MODEL, 3, seed=4)
    for i in range(3):
        for k in ("template_rgb", "template_tir", "search_rgb", "search_tir"):
            px = pixels(gray[i][k])
            np.testing.assert_allclose(px[..., 0], px[..., 1], atol=1e-3)
            np.testing.assert_allclose(px[..., 0], px[..., 2], atol=1e-3)
    plain = PairDataset([textured], base, MODEL, 3, seed=4)
    bright = PairDataset([textured], replace(base, brightness_jitter=0.2), MODEL, 3, seed=4)
    for i in range(3):
        p, b = plain[i], bright[i]
        factors = []
        for k in ("template", "search"):
            for m in ("rgb", "tir"):
                ref, got = pixels(p[f"{k}_{m}"]), pixels(b[f"{k}_{m}"])
                ok = (ref > 10) & (ref < 200)
                ratio = got[ok] / ref[ok]
                assert ratio.std() < 1e-3
                factors.append(ratio.mean())
        assert 0.8 <= min(factors) and max(factors) <= 1.2
        assert abs(factors[0] - factors[1]) < 1e-3  # template: RGB and thermal alike
        assert abs(factors[2] - factors[3]) < 1e-3  # search: RGB and thermal alike


def test_degenerate_pairs_give_up_after_bounded_retries(tmp_path):
    frames = textures(3)
    far_away = write_sequence(tmp_path, "far_away", frames, frames, [(-500, -500, 8, 8)] * 3)
    ds = PairDataset([far_away], NO_AUG, MODEL, 2, seed=0, max_attempts=5)
    with pytest.raises(RuntimeError, match=r"5 drawn pairs in a row were degenerate.*far_away "
                                           r"frame \d \(template\): crop is all padding"):
        ds[0]


def test_sequences_without_a_usable_pair(tmp_path):
    frames = textures(3)
    empty = write_sequence(tmp_path, "empty", frames, frames, [(0, 0, 0, 0)] * 3)
    with pytest.raises(ValueError, match="none of the 1 sequences has two frames with valid"):
        PairDataset([empty], NO_AUG, MODEL, 2, seed=0)
    with pytest.raises(ValueError, match="no sequences"):
        PairDataset([], NO_AUG, MODEL, 2, seed=0)
    with pytest.raises(ValueError, match="samples_per_epoch"):
        PairDataset([empty], NO_AUG, MODEL, 0, seed=0)
