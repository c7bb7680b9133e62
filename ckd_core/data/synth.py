"""Synthetic RGB + thermal world: test fixtures and the shipped model's training data.

One `SequenceSpec` (synth_spec) describes a sequence; the pipeline is
    plan_sequence(spec)  -> SequencePlan     camera, objects, events, exact GT (synth_plan)
    SequenceRenderer(plan).frame(k)           pixels, one frame at a time  (synth_render)
    write_dataset(specs, out, layout)         VTUAV / LasHeR folders       (synth_write)
with the background canvases in synth_textures, the object sprites in synth_sprites and
the smooth random paths and event timing in synth_motion.
Everything is deterministic per spec: sequence k of `make_benchmark_specs(seed, n)` is the
same for every n, and the same spec writes byte-identical files.

Conventions (details in each module):
- RGB frames: (H, W, 3) uint8 in RGB order. Thermal frames: (H, W) uint8 (white = hot,
  fixed linear range per sequence) or uint16 radiometric counts
  (counts = 4000 + 100 * degrees Celsius) with thermal_bits=16.
- GT: (N, 4) int32 xywh of the target box clipped to the image, all zeros when the target
  is entirely out of view; an occluded target keeps its full box. The thermal GT is the RGB
  GT shifted by the registration offset and delayed by the time offset, when set.
- Files: see synth_write (dense per-frame VTUAV GT in dense_rgb.txt / dense_ir.txt,
  attributes.txt with one attribute name a line, 16-bit thermal as .png).

Typical use:
    specs = make_benchmark_specs(seed=1, count=20, num_frames=300)   # every attribute
    rgb, thermal, gt_rgb, gt_thermal, attributes = render_sequence(specs[0])
    for f in iter_sequence(long_spec): ...                             # streaming
"""

from .synth_plan import SequencePlan, plan_sequence
from .synth_render import (RenderedSequence, SequenceRenderer, SynthFrame, iter_sequence,
                           render_sequence)
from .synth_spec import (ATTRIBUTES, KINDS, PROFILES, SequenceSpec, make_benchmark_specs,
                         make_sequence_spec, sequence_seed, spec_from_dict, spec_to_dict)
from .synth_write import LAYOUTS, frame_paths, write_dataset, write_sequence

# Bumped whenever the same spec renders different pixels or GT: caches of generated data
# (e.g. training sets) should key on it.
GENERATOR_VERSION = 1

__all__ = [
    "ATTRIBUTES", "GENERATOR_VERSION", "KINDS", "LAYOUTS", "PROFILES", "RenderedSequence",
    "SequencePlan", "SequenceRenderer", "SequenceSpec", "SynthFrame", "frame_paths",
    "iter_sequence", "make_benchmark_specs", "make_sequence_spec", "plan_sequence",
    "render_sequence", "sequence_seed", "spec_from_dict", "spec_to_dict", "write_dataset",
    "write_sequence",
]
