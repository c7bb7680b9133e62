"""`ckd eval` end to end on a tiny synthetic LasHeR-layout benchmark (4 sequences of 12
160x128 frames, ckd_tiny random weights): toolkit-format results, report, plots, scores;
resuming after a SIGKILL of the whole run and after an interruption between sequences; the
OpenCV MIL baselines; VTUAV's sparse ground truth; errors that name the sequence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ckd_core.cli import main
from ckd_core.data.synth import make_benchmark_specs, write_dataset
from ckd_core.evaluation.results_io import read_result_file
from ckd_core.evaluation.runner import (EvalJob, RunnerError, TrackerSpec, is_complete,
                                        run_benchmark)
from ckd_core.evaluation.scorer import score_dataset
from ckd_core.evaluation.speed import read_times, times_path

REPO = Path(__file__).resolve().parents[1]
N_SEQ, N_FRAMES = 4, 12
TRACKER = "ckd_tiny_random"


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "lasher"
    specs = make_benchmark_specs(3, N_SEQ, num_frames=N_FRAMES, width=160, height=128,
                                 profile="robot")
    write_dataset(specs, root, "lasher")
    return root


def _eval_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--dataset", "lasher", "--root", str(root), "--out", str(out),
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def reference(bench, tmp_path_factory) -> Path:
    """An uninterrupted 2-worker run: OUT folder."""
    out = tmp_path_factory.mktemp("reference")
    assert main(_eval_args(bench, out, "--preset", "ckd_tiny", "--workers", "2")) == 0
    return out


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def _result_bytes(results_dir: Path, names) -> dict[str, bytes]:
    return {n: (results_dir / f"{n}.txt").read_bytes() for n in names}


def _assert_nothing_partial(results_dir: Path, n_frames: int = N_FRAMES) -> list[str]:
    """Every result file present is complete (with its timing file); -> their names."""
    done = []
    for path in sorted(results_dir.glob("*.txt")):
        assert is_complete(results_dir, path.stem, n_frames), f"{path} is partial"
        done.append(path.stem)
    return done


@pytest.mark.slow
def test_eval_writes_toolkit_results_report_plots_and_scores(bench, reference):
    names = _names(bench)
    results = reference / TRACKER
    for name in names:
        text = (results / f"{name}.txt").read_text()
        rows = text.splitlines()
        assert len(rows) == N_FRAMES
        assert all(len(r.split(",")) == 4 for r in rows)
        boxes = read_result_file(results / f"{name}.txt")
        init = np.loadtxt(bench / name / "init.txt", delimiter=",")[0]
        np.testing.assert_array_equal(boxes[0], init)  # frame 0 = the init box
        assert np.isfinite(boxes).all()
        times = read_times(times_path(results, name))
        assert times.shape == (N_FRAMES, 2)
        assert times[0, 0] == 0.0 and (times[1:, 0] > 0).all()
        assert (times[1:, 1] >= times[1:, 0]).all()  # end to end includes the model

    manifest = json.loads((results / "run.json").read_text())
    assert manifest == {"dataset": "lasher", "tracker": TRACKER, "max_frames": None,
                        "preset": "ckd_tiny", "seed": 0, "state_machine": False}

    doc = json.loads((reference / "scores.json").read_text())
    direct = score_dataset("lasher", bench, results, names, TRACKER)
    assert doc["trackers"][TRACKER]["headline"] == pytest.approx(direct.headline)
    assert set(direct.headline) == {"PR", "NPR", "SR"}
    assert doc["speed"]["frames"] == N_SEQ * (N_FRAMES - 1)
    assert doc["speed"]["model_fps"] > 0 and doc["speed"]["end_to_end_fps"] > 0

    # Per attribute: the score over exactly the sequences that list it.
    attrs = {}
    for name in names:
        for a in (bench / name / "attributes.txt").read_text().split():
            attrs.setdefault(a, []).append(name)
    assert set(doc["attributes"]) == set(attrs)
    for a, seqs in attrs.items():
        sub = score_dataset("lasher", bench, results, seqs)
        assert doc["attributes"][a]["sequences"] == len(seqs)
        assert doc["attributes"][a]["SR"] == pytest.approx(sub.headline["SR"])

    report = (reference / "report.md").read_text()
    for heading in ("## Headline (%)", "## Speed", "## Per attribute (%)", "## Per sequence"):
        assert heading in report
    assert all(n in report for n in names)
    assert "Hardware:" in report and "FPS" in report
    for metric in ("PR", "NPR", "SR"):
        png = reference / "plots" / f"lasher_{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_resume_after_the_whole_run_is_killed(bench, reference, tmp_path):
    """SIGKILL the CLI and its workers as soon as one sequence is done: no partial result
    file; the re-run skips the finished sequences (untouched) and ends identical to an
    uninterrupted run."""
    out = tmp_path / "out"
    results = out / TRACKER
    cmd = [sys.executable, "-m", "ckd_core.cli",
           *_eval_args(bench, out, "--preset", "ckd_tiny", "--workers", "2")]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(results.glob("*.txt")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no sequence finished in 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and both workers, mid-frame
        proc.wait()
    time.sleep(0.5)
    done = _assert_nothing_partial(results)
    assert 1 <= len(done) < N_SEQ
    mtimes = {n: (results / f"{n}.txt").stat().st_mtime_ns for n in done}

    assert main(_eval_args(bench, out, "--preset", "ckd_tiny", "--workers", "2")) == 0
    assert {n: (results / f"{n}.txt").stat().st_mtime_ns for n in done} == mtimes
    names = _names(bench)
    assert _result_bytes(results, names) == _result_bytes(reference / TRACKER, names)


@pytest.mark.slow
def test_resume_after_an_interruption_between_sequences(bench, reference, tmp_path):
    job = EvalJob(dataset="lasher", root=bench, out_dir=tmp_path,
                  tracker=TrackerSpec(preset="ckd_tiny"), workers=2)
    finished = []

    def interrupt(name):
        finished.append(name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(job, progress=False, on_sequence_done=interrupt)
    results = job.results_dir
    done = _assert_nothing_partial(results)
    assert finished[0] in done and len(done) < N_SEQ
    assert not list(results.rglob("*.tmp"))  # workers stopped between frames, not mid-write
    mtimes = {n: (results / f"{n}.txt").stat().st_mtime_ns for n in done}

    summary = run_benchmark(job, progress=False)
    assert sorted(summary.skipped) == sorted(done)
    assert sorted(summary.ran + summary.skipped) == _names(bench)
    assert {n: (results / f"{n}.txt").stat().st_mtime_ns for n in done} == mtimes
    names = _names(bench)
    assert _result_bytes(results, names) == _result_bytes(reference / TRACKER, names)

    # Nothing left to do: a third run tracks nothing.
    assert run_benchmark(job, progress=False).ran == []


def test_resuming_with_other_settings_is_refused(bench, tmp_path, capsys):
    args = _eval_args(bench, tmp_path, "--baseline", "opencv-mil-rgb", "--max-frames", "3")
    assert main(args) == 0
    manifest = tmp_path / "opencv-mil-rgb" / "run.json"
    before = manifest.read_bytes()
    capsys.readouterr()
    assert main(args[:-1] + ["4"]) == 2
    err = capsys.readouterr().err
    assert "holds results of a different run" in err and "max_frames: 3 there, 4 now" in err
    assert manifest.read_bytes() == before
    assert main(args[:-1] + ["4", "--overwrite"]) == 0
    assert is_complete(tmp_path / "opencv-mil-rgb", _names(bench)[0], 4)


@pytest.mark.slow
def test_mil_baselines_and_comparison_table(bench, reference, tmp_path):
    out = tmp_path / "mil"
    assert main(_eval_args(bench, out, "--baseline", "opencv-mil-rgb")) == 0
    assert main(_eval_args(bench, out, "--baseline", "opencv-mil-thermal",
                           "--compare", f"ckd={reference / TRACKER}",
                           "--compare", str(out / "opencv-mil-rgb"))) == 0
    for name in _names(bench):
        for tracker in ("opencv-mil-rgb", "opencv-mil-thermal"):
            assert is_complete(out / tracker, name, N_FRAMES)
    doc = json.loads((out / "scores.json").read_text())
    assert set(doc["trackers"]) == {"opencv-mil-thermal", "ckd", "opencv-mil-rgb"}
    report = (out / "report.md").read_text()
    table = report.split("## Headline (%)")[1].split("##")[0]
    assert all(f"| {t} |" in table for t in ("ckd", "opencv-mil-rgb", "opencv-mil-thermal"))
    # Per attribute, every tracker: the SR of a tracker over exactly that attribute's sequences.
    assert "### Per attribute, every tracker (%)" in report
    by = doc["attributes_by_tracker"]
    assert set(by) == {"opencv-mil-thermal", "ckd", "opencv-mil-rgb"}
    for tracker, attrs in by.items():
        assert set(attrs) == set(doc["attributes"])
        for a, headline in attrs.items():
            seqs = [n for n in _names(bench)
                    if a in (bench / n / "attributes.txt").read_text().split()]
            per_seq = {s["name"]: s for s in doc["trackers"][tracker]["sequences"]}
            want = np.mean([per_seq[n]["SR"] for n in seqs])
            assert headline["SR"] == pytest.approx(want)
    # MIL on a textured synthetic scene should beat a random-weight network.
    assert doc["trackers"]["opencv-mil-rgb"]["headline"]["SR"] > 0.2


def test_max_frames_smoke_run_scores_the_frames_tracked(bench, tmp_path, capsys):
    assert main(_eval_args(bench, tmp_path, "--baseline", "opencv-mil-rgb",
                           "--max-frames", "5")) == 0
    results = tmp_path / "opencv-mil-rgb"
    for name in _names(bench):
        assert len(read_result_file(results / f"{name}.txt")) == 5
    doc = json.loads((tmp_path / "scores.json").read_text())
    assert doc["trackers"]["opencv-mil-rgb"]["n_frames"] == N_SEQ * 5
    assert "--max-frames" in (tmp_path / "report.md").read_text()


def test_vtuav_sparse_groundtruth_and_init_from_rgb_row0(tmp_path):
    root = tmp_path / "test_ST"
    spec = make_benchmark_specs(5, 1, num_frames=21, width=160, height=128,
                                profile="robot")
    write_dataset(spec, root, "vtuav")
    name = spec[0].name
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "vtuav", "--root", str(root), "--out", str(out),
                 "--baseline", "opencv-mil-thermal", "--no-progress"]) == 0
    boxes = read_result_file(out / "opencv-mil-thermal" / f"{name}.txt")
    assert len(boxes) == 21  # dense: one row per frame
    ir0 = np.loadtxt(root / name / "ir.txt")[0]  # the thermal baseline's reference modality
    np.testing.assert_array_equal(boxes[0], ir0)
    doc = json.loads((out / "scores.json").read_text())
    assert doc["trackers"]["opencv-mil-thermal"]["n_frames"] == 3  # GT rows 0, 10, 20
    assert set(doc["trackers"]["opencv-mil-thermal"]["headline"]) == {
        "MPR", "MSR", "PR_RGB", "SR_RGB"}


@pytest.mark.parametrize("workers", [1, 2])
def test_tracking_error_names_the_sequence_and_keeps_finished_ones(bench, tmp_path, workers):
    root = tmp_path / "data"
    root.mkdir()
    names = _names(bench)[:2]
    for name in names:
        (root / name).symlink_to(bench / name, target_is_directory=True)
    bad = root / "zz_bad"
    bad.mkdir()
    for sub in ("visible", "infrared"):
        (bad / sub).symlink_to(bench / names[0] / sub, target_is_directory=True)
    rows = (bench / names[0] / "init.txt").read_text().splitlines()
    rows[0] = "10,10,0,0"  # zero-size init box
    (bad / "init.txt").write_text("\n".join(rows) + "\n")

    job = EvalJob(dataset="lasher", root=root, out_dir=tmp_path / "out",
                  tracker=TrackerSpec(baseline="opencv-mil-rgb"), workers=workers)
    with pytest.raises(RunnerError, match="sequence 'zz_bad'.*zero size"):
        run_benchmark(job, progress=False)
    assert not (job.results_dir / "zz_bad.txt").exists()
    _assert_nothing_partial(job.results_dir)


@pytest.mark.slow
def test_checkpoint_run_names_results_after_it_and_records_its_hash(bench, reference, tmp_path):
    import torch

    from ckd_core.config import load_config
    from ckd_core.model import build_inference_model
    from ckd_core.model.checkpoint import read_checkpoint_meta, save_checkpoint

    cfg = load_config("ckd_tiny")
    torch.manual_seed(0)  # the weights `--preset ckd_tiny` (seed 0) builds
    ckpt = save_checkpoint(build_inference_model(cfg.model), cfg, tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    assert main(_eval_args(bench, out, "--checkpoint", str(ckpt), "--max-frames", "4")) == 0
    manifest = json.loads((out / "tiny" / "run.json").read_text())
    assert manifest["checkpoint_sha256"] == read_checkpoint_meta(ckpt)["content_sha256"]
    assert manifest["state_machine"] is False and manifest["max_frames"] == 4
    for name in _names(bench):
        mine = read_result_file(out / "tiny" / f"{name}.txt")
        ref = read_result_file(reference / TRACKER / f"{name}.txt")[:4]
        np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-3)  # thread counts differ
