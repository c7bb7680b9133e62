"""What a synthetic RGB + thermal sequence is: the typed specification and spec factories.

A `SequenceSpec` fully determines a sequence: the same spec renders byte-identical frames.
All randomness derives from `spec.seed`; `sequence_seed(seed, index)` derives it from a
run seed and the sequence's index, so sequence k is the same whatever the count.

Challenge attributes (sequence-level labels; a sequence has the attribute if and only if it
is listed; the RGBT234 / LasHeR abbreviation in brackets):
- occlusion (PO/HO): something passes in front of the target and hides most or all of it
  for some frames: from above a tree or awning standing in the target's path, at ground
  level a passer-by (person or car) crossing just in front of it. GT stays the FULL target
  box while occluded (where the target is, not what is visible of it).
- low_illumination (LI): RGB is dark and noisy (night), thermal is unchanged.
- thermal_crossover (TC): for part of the sequence the target takes the temperature of the
  background around it, so it nearly vanishes in thermal; RGB is unchanged.
- scale_variation (SV): the target's size changes by a factor of at least 2.2 over the
  sequence (less only in frames so small that the profile's size range is narrower);
  without it, by at most 1.25 (camera zoom aside).
- fast_motion (FM): bursts where the target's centre moves more than 20 px a frame (the
  RGBT234 / LasHeR rule; px at a 512-px frame, scaled with the frame size), with motion
  blur.
- camera_motion (CM): the camera pans and zooms over a larger background (without it, the
  camera is static).
- out_of_view (OV): the target leaves the frame and comes back; GT rows are all zeros while
  nothing of it is in view.
- similar_distractor (BC-like): one or two objects of the target's class and colours walk
  near it; they are 4-9 K warmer or colder, so thermal separates them.
Per-frame presence of the event attributes is in `SequencePlan.frame_flags`.

Size profiles: "uav" (top-down / oblique views, targets 8-40 px on their longer side at a
512-px short frame side) and "robot" (ground-level views with a horizon, targets 60-220 px);
both scale with min(width, height) / 512.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ATTRIBUTES = (
    "occlusion",
    "low_illumination",
    "thermal_crossover",
    "scale_variation",
    "fast_motion",
    "camera_motion",
    "out_of_view",
    "similar_distractor",
)
PROFILES = ("uav", "robot")
KINDS = ("person", "vehicle", "animal")
# Random extra attributes never pair these: neither modality would show the target.
_EXCLUSIVE_PAIRS = (frozenset({"low_illumination", "thermal_crossover"}),)
# Attributes whose events need room in the timeline.
_EVENT_ATTRIBUTES = ("occlusion", "out_of_view", "thermal_crossover", "fast_motion")
MIN_EVENT_FRAMES = 10


@dataclass(frozen=True)
class SequenceSpec:
    """One synthetic sequence. Sizes in pixels, offsets in pixels / frames.

    registration_offset: (dx, dy) of the thermal image against RGB: an object at x in RGB is
        at x + dx in thermal, and the thermal GT is the RGB GT shifted by (dx, dy) (then
        clipped to the image).
    time_offset: thermal frame k shows the scene at RGB frame time k - time_offset (positive:
        thermal lags); the thermal GT follows the thermal frame.
    thermal_bits: 8 (uint8 frames, written as JPEG) or 16 (uint16 radiometric counts,
        counts = 4000 + 100 * temperature_celsius, written as PNG).
    """

    name: str
    seed: int
    num_frames: int = 300
    width: int = 640
    height: int = 512
    profile: str = "uav"
    attributes: tuple[str, ...] = ()
    target_kind: str = "person"
    num_distractors: int = 3
    thermal_bits: int = 8
    registration_offset: tuple[int, int] = (0, 0)
    time_offset: int = 0

    def __post_init__(self) -> None:
        validate_spec(self)

    @property
    def size_scale(self) -> float:
        """Object sizes scale with the frame's short side relative to 512 px."""
        return min(self.width, self.height) / 512.0

    def has(self, attribute: str) -> bool:
        return attribute in self.attributes


def validate_spec(spec: SequenceSpec) -> None:
    """Raise ValueError naming the field and the allowed values."""
    def bad(name, value, allowed):
        raise ValueError(f"SequenceSpec {spec.name!r}: {name}={value!r} is invalid; "
                         f"expected {allowed}")

    if not spec.name or "/" in spec.name or spec.name.strip() != spec.name:
        bad("name", spec.name, "a non-empty name without '/' or surrounding spaces")
    if not isinstance(spec.seed, (int, np.integer)) or spec.seed < 0:
        bad("seed", spec.seed, "an integer >= 0")
    if spec.num_frames < 1:
        bad("num_frames", spec.num_frames, ">= 1")
    if spec.width < 64 or spec.height < 64:
        bad("width x height", (spec.width, spec.height), "at least 64 x 64")
    if spec.profile not in PROFILES:
        bad("profile", spec.profile, f"one of {', '.join(PROFILES)}")
    unknown = [a for a in spec.attributes if a not in ATTRIBUTES]
    if unknown:
        bad("attributes", unknown, f"names from {', '.join(ATTRIBUTES)}")
    if len(set(spec.attributes)) != len(spec.attributes):
        bad("attributes", spec.attributes, "no repeated names")
    events = [a for a in spec.attributes if a in _EVENT_ATTRIBUTES]
    if events and spec.num_frames < MIN_EVENT_FRAMES:
        bad("num_frames", spec.num_frames,
            f">= {MIN_EVENT_FRAMES} for the event attributes {', '.join(events)}")
    if spec.target_kind not in KINDS:
        bad("target_kind", spec.target_kind, f"one of {', '.join(KINDS)}")
    if not 0 <= spec.num_distractors <= 16:
        bad("num_distractors", spec.num_distractors, "0..16")
    if spec.thermal_bits not in (8, 16):
        bad("thermal_bits", spec.thermal_bits, "8 or 16")
    off = spec.registration_offset
    if len(off) != 2 or any(int(v) != v or abs(v) > min(spec.width, spec.height) // 4
                            for v in off):
        bad("registration_offset", off,
            f"two integers (dx, dy) of at most {min(spec.width, spec.height) // 4} px")
    if int(spec.time_offset) != spec.time_offset or abs(spec.time_offset) > 30:
        bad("time_offset", spec.time_offset, "an integer number of frames in -30..30")


def sequence_seed(seed: int, index: int) -> int:
    """The seed of sequence `index` of a run seeded with `seed` (independent of the count)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed={seed} and index={index} must both be >= 0")
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def profile_for_index(profile: str, index: int) -> str:
    """"uav" / "robot" as given; "mixed": alternating (uav, robot, uav, ...), the order
    swapped every 8 indices, so that small runs hold both profiles and, with the round-robin
    attributes, every (attribute, profile) pair appears within 16 sequences."""
    if profile in PROFILES:
        return profile
    if profile == "mixed":
        return PROFILES[(index + index // len(ATTRIBUTES)) % len(PROFILES)]
    raise ValueError(f"profile {profile!r} is invalid; expected uav, robot or mixed")


def make_sequence_spec(seed: int, index: int, *, num_frames: int = 300, width: int = 640,
                       height: int = 512, profile: str = "mixed", thermal_bits: int = 8,
                       attributes: tuple[str, ...] | None = None,
                       extra_attribute_prob: float = 0.25,
                       registration_offset: tuple[int, int] = (0, 0),
                       time_offset: int = 0) -> SequenceSpec:
    """Spec of sequence `index` of run `seed`.

    attributes=None: the round-robin attribute ATTRIBUTES[index % 8] plus each other
    attribute with probability `extra_attribute_prob` (never low_illumination together with
    thermal_crossover). A tuple: exactly those attributes (an empty tuple: none).
    """
    sseed = sequence_seed(seed, index)
    rng = np.random.default_rng(np.random.SeedSequence(sseed, spawn_key=(99,)))
    prof = profile_for_index(profile, index)
    if attributes is None:
        chosen = [ATTRIBUTES[index % len(ATTRIBUTES)]]
        for a in ATTRIBUTES:
            draw = rng.random()  # always drawn, so one attribute's pick never shifts another
            if a in chosen or draw >= extra_attribute_prob:
                continue
            if any(pair <= set(chosen) | {a} for pair in _EXCLUSIVE_PAIRS):
                continue
            chosen.append(a)
        attrs = tuple(a for a in ATTRIBUTES if a in chosen)
    else:
        attrs = tuple(attributes)
    kind_probs = (0.45, 0.35, 0.2) if prof == "uav" else (0.5, 0.3, 0.2)
    kind = KINDS[int(rng.choice(len(KINDS), p=kind_probs))]
    lo, hi = (2, 6) if prof == "uav" else (1, 4)
    n_distractors = int(rng.integers(lo, hi + 1))
    return SequenceSpec(name=f"synth_s{seed}_{index:04d}", seed=sseed, num_frames=num_frames,
                        width=width, height=height, profile=prof, attributes=attrs,
                        target_kind=kind, num_distractors=n_distractors,
                        thermal_bits=thermal_bits,
                        registration_offset=tuple(int(v) for v in registration_offset),
                        time_offset=int(time_offset))


def make_benchmark_specs(seed: int, count: int, **kwargs) -> list[SequenceSpec]:
    """`count` specs (indices 0..count-1) of run `seed`; see `make_sequence_spec` for kwargs.

    With the defaults (profile="mixed", attributes=None) every attribute is the round-robin
    attribute of some sequence once count >= 8, in both profiles once count >= 16; e.g.
    `make_benchmark_specs(1, 20)` is a 20-sequence held-out set covering every attribute.
    """
    if count < 0:
        raise ValueError(f"count={count} must be >= 0")
    return [make_sequence_spec(seed, i, **kwargs) for i in range(count)]


def spec_to_dict(spec: SequenceSpec) -> dict:
    """JSON-ready dict of a spec (tuples become lists)."""
    return {name: (list(v) if isinstance(v, tuple) else v)
            for name, v in vars(spec).items()}


def spec_from_dict(data: dict) -> SequenceSpec:
    """Inverse of spec_to_dict; unknown keys are an error."""
    known = set(SequenceSpec.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown SequenceSpec keys {unknown}; expected some of {sorted(known)}")
    fixed = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return SequenceSpec(**fixed)
