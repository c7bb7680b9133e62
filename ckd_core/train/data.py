"""The training data of a run: sequences from `data.root`, or synthetic ones made on demand.

- A benchmark dataset (`data.dataset` lasher, vtuav, ...): every sequence of `data.root`, or
  those named in `data.split_file`. A missing or empty folder is a `DatasetError` that says
  which key or option to fix.
- `dataset: synthetic`: `data.synthetic_sequences` sequences of run seed
  `data.synthetic_seed`, rendered by `ckd_core.data.synth` into a cache folder in the LasHeR
  layout (dense per-frame GT) the first time they are needed, then reused. The folder is
  `data.root` when given, else
  `<cache>/ckd-tracker/synthetic/seed<S>_n<N>_<W>x<H>_f<F>_g<G>` (`<cache>` = $XDG_CACHE_HOME
  or ~/.cache; G = `synth.GENERATOR_VERSION`, so a generator that renders differently never
  reuses stale data). A `.complete` marker holding the recipe is written last, so an
  interrupted generation is redone and a folder made with another recipe is refused. Sequence
  i of a seed does not depend on the count, so a cache folder with more sequences starts from
  the largest complete one with the same recipe otherwise (hard links; a copy across file
  systems) and renders only the new ones. In a process group rank 0 generates while the
  others wait (and fail with it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tqdm import tqdm

from ckd_core.config import DataConfig
from ckd_core.data.synth import GENERATOR_VERSION
from ckd_core.data.sequences import Sequence, SequenceError, list_sequences
from ckd_core.train.distributed import DistInfo, broadcast_object

SYNTH_LAYOUT = "lasher"
COMPLETE_MARKER = ".complete"
# Frame geometry of on-demand synthetic training sequences: the synthetic benchmarks' frame
# size (so targets have the pixel sizes the tracker meets), fewer frames than a benchmark
# sequence (variety comes from more sequences; ~18 MB and ~2.5 s of rendering each).
SYNTH_FRAMES = 150
SYNTH_WIDTH = 640
SYNTH_HEIGHT = 512


class DatasetError(ValueError):
    """The training data cannot be found or read; the message says what to fix."""


def default_synthetic_root(data: DataConfig) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = (f"seed{data.synthetic_seed}_n{data.synthetic_sequences}_{SYNTH_WIDTH}x"
            f"{SYNTH_HEIGHT}_f{SYNTH_FRAMES}_g{GENERATOR_VERSION}")
    return base / "ckd-tracker" / "synthetic" / name


def training_sequences(data: DataConfig, info: DistInfo | None = None,
                       progress: bool = True) -> list[Sequence]:
    """Open (and for `synthetic`, first generate) the sequences a run trains on. progress:
    show a bar while synthetic sequences are generated (messages are printed either way)."""
    if data.dataset == "synthetic":
        return _synthetic_sequences(data, info, progress)
    if not data.root:
        raise DatasetError(f"data.root is empty: give the {data.dataset} dataset folder with "
                           "--data-root DIR (or --set data.root=DIR)")
    root = Path(data.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data.root = {str(root)!r} does not exist or is not a folder "
                           f"(dataset {data.dataset}); pass the right folder with --data-root")
    if data.split_file and not Path(data.split_file).is_file():
        raise DatasetError(f"data.split_file = {data.split_file!r} does not exist")
    try:
        return list_sequences(data.dataset, root, data.split_file or None)
    except SequenceError as exc:
        raise DatasetError(f"cannot read the {data.dataset} training set in {root}: {exc}") \
            from None


def _synthetic_sequences(data: DataConfig, info: DistInfo | None,
                         progress: bool = True) -> list[Sequence]:
    if data.synthetic_sequences <= 0:
        raise DatasetError("data.dataset is synthetic but data.synthetic_sequences is 0; set "
                           "how many sequences to generate (e.g. --set "
                           "data.synthetic_sequences=40)")
    root = Path(data.root).expanduser() if data.root else default_synthetic_root(data)
    reuse = [] if data.root else sibling_caches_of(root)
    recipe = {"seed": data.synthetic_seed, "count": data.synthetic_sequences,
              "frames": SYNTH_FRAMES, "width": SYNTH_WIDTH, "height": SYNTH_HEIGHT,
              "layout": SYNTH_LAYOUT, "generator": GENERATOR_VERSION}
    error: Exception | None = None
    if info is None or info.is_main:
        try:
            ensure_synthetic(root, recipe, reuse=reuse, progress=progress)
        except (OSError, ValueError) as exc:
            error = exc
    # a collective: the other processes wait here, and learn if rank 0 failed
    message = broadcast_object(str(error) if error else None, info) if info else None
    if error is not None:
        raise error
    if message:
        raise DatasetError(f"rank 0 could not prepare the synthetic data: {message}")
    return list_sequences(SYNTH_LAYOUT, root)


def sibling_caches_of(root: Path) -> list[Path]:
    """The other folders next to `root`: candidates for `ensure_synthetic(reuse=...)`, which
    takes sequences only from one whose `.complete` recipe matches in all but the count."""
    if not root.parent.is_dir():
        return []
    return [p for p in root.parent.iterdir() if p != root and p.is_dir()]


def _read_marker(folder: Path):
    """The recipe in `folder`'s `.complete` marker; None when unreadable; OSError when absent."""
    try:
        return json.loads((folder / COMPLETE_MARKER).read_text())
    except json.JSONDecodeError:
        return None


def _reusable(folder: Path, recipe: dict) -> int:
    """How many of `recipe`'s sequences `folder` holds complete (0: none, or another recipe)."""
    try:
        found = _read_marker(folder)
    except OSError:
        return 0
    if not isinstance(found, dict) or {**found, "count": recipe["count"]} != recipe:
        return 0
    count = found.get("count")
    return count if isinstance(count, int) and 0 < count < recipe["count"] else 0


def _link_tree(src: Path, dst: Path) -> None:
    """`dst` as a copy of the folder `src` whose files are hard links where possible."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:  # another file system, or links not supported
            shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link)


def ensure_synthetic(root: Path, recipe: dict, reuse: list[Path] | tuple = (),
                     progress: bool = True) -> None:
    """Generate the synthetic sequences of `recipe` in `root` unless already complete. The
    first sequences come from the largest complete folder in `reuse` made with the same recipe
    but fewer sequences, when there is one (see the module docstring)."""
    marker = root / COMPLETE_MARKER
    if marker.is_file():
        found = _read_marker(root)
        if found == recipe:
            return
        raise DatasetError(f"{root} holds synthetic data made with {found}, not {recipe}; "
                           "use another data.root or delete that folder")
    from ckd_core.data import synth
    if root.exists() and any(root.iterdir()):
        ours = [p for p in root.iterdir() if p.name.startswith("synth_") and p.is_dir()]
        if not ours:
            raise DatasetError(f"{root} is not empty and holds no synthetic sequences; refusing "
                               "to write into it (use an empty or new data.root)")
        for p in ours:  # an interrupted generation: start over
            shutil.rmtree(p)
    root.mkdir(parents=True, exist_ok=True)
    specs = synth.make_benchmark_specs(recipe["seed"], recipe["count"],
                                       num_frames=recipe["frames"], width=recipe["width"],
                                       height=recipe["height"])
    have, source = max(((_reusable(p, recipe), p) for p in reuse), default=(0, None),
                       key=lambda t: t[0])
    if have:
        print(f"reusing {have} synthetic sequences of {source} (same seed and recipe) ...",
              flush=True)
        for spec in specs[:have]:
            _link_tree(source / spec.name, root / spec.name)
    todo = specs[have:]
    print(f"generating {len(todo)} synthetic sequences in {root} ...", flush=True)
    with tqdm(total=sum(s.num_frames for s in todo), unit="frame", desc="synthetic data",
              disable=not progress) as bar:
        synth.write_dataset(todo, root, layout=recipe["layout"],
                            workers=min(4, os.cpu_count() or 1), progress=bar.update)
    (root / "sequences.txt").write_text("".join(s.name + "\n" for s in specs))
    marker.write_text(json.dumps(recipe))
