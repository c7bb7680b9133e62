"""The synthetic RGB + thermal world: determinism, layouts, GT conventions, challenge
attributes. Small frames and few frames keep it fast."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_core.data.synth import (ATTRIBUTES, SequenceRenderer, SequenceSpec, iter_sequence,
                                 make_benchmark_specs, make_sequence_spec, plan_sequence,
                                 render_sequence, spec_from_dict, write_dataset)

W, H, N = 192, 160, 32


def spec(attributes=(), profile="uav", seed=11, **kw) -> SequenceSpec:
    kw.setdefault("num_frames", N)
    return make_sequence_spec(seed, 0, width=W, height=H, profile=profile,
                              attributes=tuple(attributes), **kw)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def read_rows(path: Path, sep: str) -> np.ndarray:
    return np.array([[int(v) for v in line.split(sep)] for line in path.read_text().splitlines()])


# ----------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("layout,bits", [("vtuav", 8), ("lasher", 16)])
def test_same_seed_same_bytes_other_seed_differs(tmp_path, layout, bits):
    specs = make_benchmark_specs(5, 2, num_frames=12, width=W, height=H, thermal_bits=bits)
    write_dataset(specs, tmp_path / "a", layout)
    write_dataset(specs, tmp_path / "b", layout)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    other = make_benchmark_specs(6, 1, num_frames=12, width=W, height=H, thermal_bits=bits)
    write_dataset(other, tmp_path / "c", layout)
    c = files_of(tmp_path / "c")
    first = sorted(k for k in a if k.endswith(".jpg"))[0]
    other_first = sorted(k for k in c if k.endswith(".jpg"))[0]
    assert a[first] != c[other_first]


def test_sequence_k_does_not_depend_on_count():
    assert make_benchmark_specs(3, 2)[1] == make_benchmark_specs(3, 9)[1]
    s = spec(num_frames=6)
    first = render_sequence(s)
    again = render_sequence(s)
    assert all(np.array_equal(x, y) for x, y in zip(first.rgb + first.thermal,
                                                   again.rgb + again.thermal))


def test_frames_render_in_any_order_and_stream_matches():
    s = spec(("camera_motion",), num_frames=8)
    renderer = SequenceRenderer(plan_sequence(s))
    late = renderer.frame(6)
    streamed = list(iter_sequence(s))
    assert len(streamed) == 8
    assert np.array_equal(late.rgb, streamed[6].rgb)
    assert np.array_equal(late.thermal, streamed[6].thermal)
    rgb, thermal, gt_rgb, gt_thermal, attributes = render_sequence(s)
    assert rgb[0].shape == (H, W, 3) and rgb[0].dtype == np.uint8
    assert thermal[0].shape == (H, W) and thermal[0].dtype == np.uint8
    assert gt_rgb.shape == gt_thermal.shape == (8, 4) and attributes == ("camera_motion",)


# ----------------------------------------------------------------------------- layouts

def test_vtuav_layout(tmp_path):
    specs = make_benchmark_specs(2, 2, num_frames=23, width=W, height=H)
    names = write_dataset(specs, tmp_path, "vtuav")
    assert (tmp_path / "sequences.txt").read_text().split() == names
    for s in specs:
        d = tmp_path / s.name
        assert sorted(p.name for p in (d / "rgb").iterdir()) == [f"{k:06d}.jpg" for k in range(23)]
        assert sorted(p.name for p in (d / "ir").iterdir()) == [f"{k:06d}.jpg" for k in range(23)]
        dense_rgb = read_rows(d / "dense_rgb.txt", " ")
        dense_ir = read_rows(d / "dense_ir.txt", " ")
        sparse_rgb, sparse_ir = read_rows(d / "rgb.txt", " "), read_rows(d / "ir.txt", " ")
        assert len(dense_rgb) == 23 and len(sparse_rgb) == math.ceil(23 / 10) == 3
        assert np.array_equal(sparse_rgb, dense_rgb[::10])
        assert np.array_equal(sparse_ir, dense_ir[::10])
        assert np.array_equal(dense_rgb, plan_sequence(s).gt_rgb)
        assert (d / "attributes.txt").read_text().split() == list(s.attributes)
        assert spec_from_dict(json.loads((d / "synth_spec.json").read_text())) == s
        img = cv2.imread(str(d / "rgb" / "000000.jpg"))
        assert img.shape == (H, W, 3)


def test_lasher_layout_and_16_bit_thermal(tmp_path):
    s = spec(num_frames=7, thermal_bits=16)
    write_dataset([s], tmp_path, "lasher")
    d = tmp_path / s.name
    assert sorted(p.name for p in (d / "visible").iterdir()) == [f"v{k:06d}.jpg" for k in range(7)]
    assert sorted(p.name for p in (d / "infrared").iterdir()) == [f"i{k:06d}.png" for k in range(7)]
    vis = read_rows(d / "visible.txt", ",")
    assert vis.shape == (7, 4)
    assert (d / "init.txt").read_text() == (d / "visible.txt").read_text()
    assert np.array_equal(read_rows(d / "infrared.txt", ","), vis)
    ir = cv2.imread(str(d / "infrared" / "i000003.png"), cv2.IMREAD_UNCHANGED)
    assert ir.dtype == np.uint16 and ir.shape == (H, W)
    rendered = render_sequence(s).thermal[3]
    assert np.array_equal(ir, rendered)
    # radiometric counts = 4000 + 100 * Celsius: a few thousand, not an 8-bit range
    assert 1000 < np.median(ir) < 10000 and int(ir.max()) - int(ir.min()) > 255


def test_existing_sequence_needs_overwrite(tmp_path):
    s = spec(num_frames=3)
    write_dataset([s], tmp_path, "lasher")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_dataset([s], tmp_path, "lasher")
    write_dataset([s], tmp_path, "lasher", overwrite=True)


# ----------------------------------------------------------------------------- GT rules

@pytest.mark.parametrize("profile", ["uav", "robot"])
def test_gt_boxes_inside_image_or_all_zero(profile):
    for a in ATTRIBUTES:
        plan = plan_sequence(spec((a,), profile=profile, seed=3))
        for gt in (plan.gt_rgb, plan.gt_thermal):
            zero = np.all(gt == 0, axis=1)
            x, y, w, h = gt[~zero].T
            assert np.all((w > 0) & (h > 0) & (x >= 0) & (y >= 0) & (x + w <= W) & (y + h <= H))
        assert not np.all(plan.gt_rgb[0] == 0), "frame 0 must show the target"


def test_out_of_view_frames_have_zero_gt(tmp_path):
    s = spec(("out_of_view",), num_frames=60)
    plan = plan_sequence(s)
    full = plan.objects[plan.target].boxes[np.arange(60) - plan.t0]
    x, y, w, h = full.T
    gone = (x >= W) | (y >= H) | (x + w <= 0) | (y + h <= 0)
    assert gone.any(), "the target never left the frame"
    assert np.all(plan.gt_rgb[gone] == 0) and np.all(plan.gt_rgb[~gone, 2:] > 0)
    assert plan.frame_flags["out_of_view"][gone].all()
    write_dataset([s], tmp_path, "lasher")
    rows = (tmp_path / s.name / "visible.txt").read_text().splitlines()
    assert all(rows[k] == "0,0,0,0" for k in np.flatnonzero(gone))


def test_occluded_target_keeps_its_full_box():
    plan = plan_sequence(spec(("occlusion",), num_frames=60))
    occ = plan.frame_flags["occlusion"]
    assert occ.any()
    assert np.all(plan.gt_rgb[occ, 2:] > 0)
    occluders = [o for o in plan.objects if o.role == "occluder"]
    assert occluders and plan.objects.index(occluders[0]) > plan.target  # drawn in front


def test_registration_offset_shifts_thermal_content_and_gt():
    base = spec(num_frames=4)
    shifted = replace(base, registration_offset=(6, -4))
    pa, pb = plan_sequence(base), plan_sequence(shifted)
    assert np.array_equal(pa.gt_rgb, pb.gt_rgb)
    inside = np.all(pa.gt_rgb[:, :2] > 8, axis=1) & np.all(
        pa.gt_rgb[:, :2] + pa.gt_rgb[:, 2:] < [W - 8, H - 8], axis=1)
    assert inside.any()
    assert np.array_equal(pb.gt_thermal[inside], pa.gt_rgb[inside] + [6, -4, 0, 0])
    ta = SequenceRenderer(pa).temperature(2)
    tb = SequenceRenderer(pb).temperature(2)
    # thermal content moved by (+6, -4): tb[y - 4, x + 6] == ta[y, x] away from the borders
    close = np.isclose(tb[12 - 4:H - 12 - 4, 12 + 6:W - 12 + 6], ta[12:H - 12, 12:W - 12],
                       atol=1e-3)
    assert close.mean() > 0.98


def test_time_offset_delays_thermal_gt():
    s = spec(("fast_motion",), num_frames=40, time_offset=3)
    plan = plan_sequence(s)
    assert np.array_equal(plan.gt_thermal[3:], plan.gt_rgb[:-3])
    assert not np.array_equal(plan.gt_thermal, plan.gt_rgb)


# ----------------------------------------------------------------------------- attributes

def test_low_illumination_darkens_rgb_only():
    day, night = spec(num_frames=3), spec(("low_illumination",), num_frames=3)
    d, n = render_sequence(day), render_sequence(night)
    assert np.mean(n.rgb[1]) < 0.5 * np.mean(d.rgb[1])
    # noisier relative to its level: the night frame's high-frequency residual is larger
    hf = lambda im: np.std(im.astype(np.float32) - cv2.blur(im, (3, 3)).astype(np.float32))
    assert hf(n.rgb[1]) / np.mean(n.rgb[1]) > hf(d.rgb[1]) / np.mean(d.rgb[1])
    assert all(np.array_equal(a, b) for a, b in zip(d.thermal, n.thermal))
    assert np.array_equal(d.gt_rgb, n.gt_rgb)


def without_target(plan):
    """The same plan with the target removed: the background it stands in front of."""
    return replace(plan, objects=tuple(o for i, o in enumerate(plan.objects)
                                       if i != plan.target), target=-1)


def target_contrast_kelvin(plan, frames) -> float:
    """Mean |temperature with the target - without it| over the target's thermal box."""
    with_t, without = SequenceRenderer(plan), SequenceRenderer(without_target(plan))
    out = []
    for k in frames:
        x, y, w, h = plan.gt_thermal[k]
        diff = np.abs(with_t.temperature(k) - without.temperature(k))
        out.append(diff[y:y + h, x:x + w].mean())
    return float(np.mean(out))


@pytest.mark.parametrize("profile", ["uav", "robot"])
def test_thermal_crossover_hides_target_in_thermal_only(profile):
    normal = plan_sequence(spec(num_frames=40, profile=profile, seed=4))
    cross = plan_sequence(spec(("thermal_crossover",), num_frames=40, profile=profile, seed=4))
    full = np.flatnonzero(cross.crossover[np.arange(40) - cross.t0] >= 1.0)
    assert len(full) >= 5 and cross.frame_flags["thermal_crossover"][full].all()
    assert target_contrast_kelvin(cross, full) < 0.35 * target_contrast_kelvin(normal, full)
    # without crossover the target stands out (its box also holds background corners)
    assert target_contrast_kelvin(normal, full) > 1.5
    a, b = render_sequence(normal), render_sequence(cross)
    assert all(np.array_equal(x, y) for x, y in zip(a.rgb, b.rgb))  # RGB untouched
    assert not all(np.array_equal(x, y) for x, y in zip(a.thermal, b.thermal))


def test_scale_variation_ratio():
    sv = plan_sequence(spec(("scale_variation",), num_frames=60)).gt_rgb
    still = plan_sequence(spec((), num_frames=60)).gt_rgb
    side = lambda gt: gt[:, 2:].max(axis=1)
    assert side(sv).max() / side(sv).min() >= 2.0
    assert side(still).max() / side(still).min() <= 1.6


def test_fast_motion_and_similar_distractor():
    plan = plan_sequence(spec(("fast_motion", "similar_distractor"), num_frames=60))
    assert plan.frame_flags["fast_motion"].sum() >= 3
    target = plan.objects[plan.target]
    alike = [o for o in plan.objects if o.role == "similar_distractor"]
    assert alike and all(o.kind == target.kind for o in alike)
    assert all(abs(o.sprites[0].base_temp - target.sprites[0].base_temp) >= 3.5 for o in alike)
    calm = plan_sequence(spec((), num_frames=60))
    assert not calm.frame_flags["fast_motion"].any()


def test_benchmark_specs_cover_every_attribute_in_both_profiles():
    specs = make_benchmark_specs(1, 20, num_frames=30)
    assert len({s.name for s in specs}) == 20
    for profile in ("uav", "robot"):
        seen = {a for s in specs if s.profile == profile for a in s.attributes}
        assert seen == set(ATTRIBUTES)
    assert all(not {"low_illumination", "thermal_crossover"} <= set(s.attributes)
               for s in specs)


def test_spec_validation_names_the_field():
    with pytest.raises(ValueError, match="profile"):
        SequenceSpec(name="x", seed=1, profile="boat")
    with pytest.raises(ValueError, match="attributes"):
        SequenceSpec(name="x", seed=1, attributes=("rain",))
    with pytest.raises(ValueError, match="num_frames"):
        SequenceSpec(name="x", seed=1, num_frames=5, attributes=("occlusion",))


# ----------------------------------------------------------------------------- CLI

def synth_cli(argv: list[str]) -> int:
    """`ckd synth ARGS` through the subcommand's own parser (the full `ckd` parser imports
    every subcommand, torch included, which takes seconds)."""
    import argparse

    from ckd_core.cli import synth as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return cmd.run(parser.parse_args(argv))


def test_cli_writes_dataset_and_rejects_bad_attribute(tmp_path, capsys):
    from ckd_core.cli import CLIError
    out = tmp_path / "synth"
    rc = synth_cli(["--layout", "vtuav", "--seed", "7", "--sequences", "2", "--frames", "11",
                    "--width", str(W), "--height", str(H), "--out", str(out),
                    "--attributes", "occlusion,camera_motion"])
    assert rc == 0
    names = (out / "sequences.txt").read_text().split()
    assert len(names) == 2
    assert len(read_rows(out / names[0] / "rgb.txt", " ")) == 2
    assert (out / names[1] / "attributes.txt").read_text().split() == ["occlusion",
                                                                       "camera_motion"]
    assert "wrote 2 sequences" in capsys.readouterr().out
    with pytest.raises(CLIError, match="rain"):
        synth_cli(["--layout", "vtuav", "--out", str(out), "--attributes", "rain"])
    with pytest.raises(CLIError, match="DX,DY"):
        synth_cli(["--layout", "vtuav", "--out", str(out), "--registration-offset", "3"])


# ----------------------------------------------------------------------------- readers

@pytest.mark.parametrize("layout,bits", [("vtuav", 8), ("lasher", 16)])
def test_dataset_readers_open_the_output(tmp_path, layout, bits):
    from ckd_core.data.sequences import list_sequences
    specs = make_benchmark_specs(9, 2, num_frames=21, width=W, height=H, thermal_bits=bits,
                                 registration_offset=(3, 2))
    write_dataset(specs, tmp_path, layout)
    seqs = list_sequences(layout, tmp_path, tmp_path / "sequences.txt")
    assert [q.name for q in seqs] == [s.name for s in specs]
    for s, q in zip(specs, seqs):
        plan = plan_sequence(s)
        assert q.num_frames == 21
        dense_rgb, dense_thermal = q.dense_gt()
        assert np.array_equal(dense_rgb, plan.gt_rgb)
        # LasHeR has one GT for both modalities (init.txt, what the reader and the toolkit
        # use); the offset thermal GT is only in infrared.txt there.
        expected = plan.gt_thermal if layout == "vtuav" else plan.gt_rgb
        assert np.array_equal(dense_thermal, expected)
        assert set(s.attributes) <= q.attributes
        rgb, thermal = q.frame(4)
        assert rgb.shape == (H, W, 3) and thermal.shape == (H, W, 3)
        rendered = render_sequence(s).rgb[4]
        assert np.abs(rgb.astype(int) - rendered).mean() < 6  # JPEG, nothing else


def test_frame_index_out_of_range_is_an_error():
    renderer = SequenceRenderer(plan_sequence(spec(num_frames=3)))
    for k in (-1, 3):
        with pytest.raises(IndexError, match="outside 0..2"):
            renderer.frame(k)
