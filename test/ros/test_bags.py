"""Bag tools: sequence -> rosbag2 round trip (rosbags only), `ckd bag` without the ROS
environment, and bag -> node -> init service -> detections -> scores in lock-step with real
rclpy, checked against the offline Tracker on the same frames.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ckd_tracker_ros import bag_tools as B
from ros_helpers import ros_unavailable

FRAMES = 25
W, H = 160, 128
OFFSET_S, JITTER_S, SEED = 0.012, 0.004, 3
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seq_dirs(tmp_path_factory):
    """{name: sequence folder}: VTUAV 8-bit, VTUAV 16-bit thermal, LasHeR (synthetic)."""
    from ckd_core.data.synth import make_sequence_spec, write_sequence
    root = tmp_path_factory.mktemp("seqs")
    out = {}
    for name, layout, bits in (("vtuav", "vtuav", 8), ("vtuav16", "vtuav", 16),
                               ("lasher", "lasher", 8)):
        spec = make_sequence_spec(5, 1, num_frames=FRAMES, width=W, height=H,
                                  profile="robot", thermal_bits=bits)
        out[name] = write_sequence(spec, root / name, layout)
    return out


@pytest.fixture(scope="module")
def vtuav_bag(seq_dirs, tmp_path_factory):
    bag = tmp_path_factory.mktemp("bags") / "vtuav"
    B.from_sequence(seq_dirs["vtuav"], bag, thermal_offset_s=OFFSET_S, jitter_s=JITTER_S,
                    seed=SEED, progress=False)
    return bag


def _messages(bag, topic):
    """[(log_ns, deserialised message)] of one topic."""
    store = B.bag_typestore()
    reader = B._open_reader(bag)
    try:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, store.deserialize_cdr(raw, c.msgtype))
                for c, t, raw in reader.messages(connections=conns)]
    finally:
        reader.close()


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


# ---------------------------------------------------------------------------------------------
# Round trip (rosbags only)
# ---------------------------------------------------------------------------------------------

def test_bag_layout_metadata_and_qos(vtuav_bag):
    meta = yaml.safe_load((vtuav_bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == "mcap"
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert {n: (t["topic_metadata"]["type"], t["message_count"]) for n, t in topics.items()} == {
        B.RGB_TOPIC: (B.IMAGE_TYPE, FRAMES), B.THERMAL_TOPIC: (B.IMAGE_TYPE, FRAMES),
        B.GT_TOPICS[0]: (B.GT_TYPE, 3), B.GT_TOPICS[1]: (B.GT_TYPE, 3)}  # frames 0, 10, 20
    qos = yaml.safe_load(topics[B.RGB_TOPIC]["topic_metadata"]["offered_qos_profiles"])
    assert qos[0]["reliability"] == 2 and qos[0]["depth"] == 5  # best effort: sensor data
    qos = yaml.safe_load(topics[B.GT_TOPICS[0]]["topic_metadata"]["offered_qos_profiles"])
    assert qos[0]["reliability"] == 1  # reliable
    custom = meta["custom_data"]
    assert custom["ckd.dataset"] == "vtuav" and custom["ckd.gt_frame_step"] == "10"
    assert custom["ckd.frames"] == str(FRAMES) and custom["ckd.thermal_encoding"] == "mono8"


def test_stamps_offset_jitter_and_log_order(vtuav_bag):
    rgb = _messages(vtuav_bag, B.RGB_TOPIC)
    th = _messages(vtuav_bag, B.THERMAL_TOPIC)
    rgb_ns = np.array([_stamp(m) for _, m in rgb])
    th_ns = np.array([_stamp(m) for _, m in th])
    want_rgb, want_th = B.frame_stamps(FRAMES, 30.0, OFFSET_S, JITTER_S, SEED)
    np.testing.assert_array_equal(rgb_ns, want_rgb)
    np.testing.assert_array_equal(th_ns, want_th)
    assert rgb_ns[0] == B.DEFAULT_START_NS
    assert np.all(np.abs(np.diff(rgb_ns) - 1e9 / 30) <= 1)
    delta = (th_ns - rgb_ns) / 1e9
    assert np.all(np.abs(delta - OFFSET_S) <= JITTER_S + 1e-9) and np.ptp(delta) > 0
    assert all(t == _stamp(m) for t, m in rgb + th)  # log time = header stamp
    assert {m.header.frame_id for _, m in rgb} == {B.FRAME_IDS[0]}
    assert {m.header.frame_id for _, m in th} == {B.FRAME_IDS[1]}
    index = B.read_index(vtuav_bag)
    log = [t for t, _ in _messages(vtuav_bag, B.RGB_TOPIC)]
    assert log == sorted(log)
    np.testing.assert_array_equal(index.pairs, np.arange(FRAMES))


def test_images_decode_to_the_sequence_frames(vtuav_bag, seq_dirs):
    from ckd_core.data.sequences import open_sequence
    seq = open_sequence("vtuav", seq_dirs["vtuav"])
    index = B.read_index(vtuav_bag)
    for pair in B.iter_pairs(index, 0, 4):
        rgb, thermal = seq.frame(pair.index)
        np.testing.assert_array_equal(B.decode_image(pair.rgb, B.IMAGE_TYPE), rgb)
        np.testing.assert_array_equal(B.decode_image(pair.thermal, B.IMAGE_TYPE), thermal)
    (_, msg), = _messages(vtuav_bag, B.THERMAL_TOPIC)[:1]
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("mono8", W, H, W)
    (_, msg), = _messages(vtuav_bag, B.RGB_TOPIC)[:1]
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("rgb8", 3 * W, 0)


def test_ground_truth_only_on_annotated_frames(vtuav_bag, seq_dirs):
    from ckd_core.data.sequences import open_sequence
    seq = open_sequence("vtuav", seq_dirs["vtuav"])
    index = B.read_index(vtuav_bag)
    np.testing.assert_array_equal(index.gt.frame_ids, [0, 10, 20])
    np.testing.assert_array_equal(index.gt.rgb, seq.gt_rgb[:3])
    np.testing.assert_array_equal(index.gt.thermal, seq.gt_thermal[:3])
    gt_rgb = _messages(vtuav_bag, B.GT_TOPICS[0])
    gt_th = _messages(vtuav_bag, B.GT_TOPICS[1])
    assert [_stamp(m) for _, m in gt_rgb] == [int(index.rgb_stamps[k]) for k in (0, 10, 20)]
    assert [_stamp(m) for _, m in gt_th] == [int(index.thermal_stamps[k]) for k in (0, 10, 20)]
    assert {m.header.frame_id for _, m in gt_th} == {B.FRAME_IDS[1]}
    x, y, w, h = seq.gt_rgb[1]
    det = gt_rgb[1][1]
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x,
            det.bbox.size_y) == (x + w / 2, y + h / 2, w, h)
    assert det.bbox.center.theta == 0 and det.id == seq.name and len(det.results) == 0


def test_stored_type_definitions_are_our_msg_files(vtuav_bag):
    from test_ros_standin_hashes import EXPECTED
    reader = B._open_reader(vtuav_bag)
    try:
        (conn,) = [c for c in reader.connections if c.topic == B.GT_TOPICS[0]]
    finally:
        reader.close()
    assert conn.digest == f"RIHS01_{EXPECTED['Detection2D']}"
    sections = {}  # "vision_msgs/Pose2D" -> its field lines, as stored
    name = "vision_msgs/Detection2D"
    for block in conn.msgdef.data.split("=" * 80 + "\n"):
        if block.startswith("MSG: "):
            head, _, block = block.partition("\n")
            name = head[len("MSG: "):]
        sections[name] = block.splitlines()
    vision = {k.split("/")[-1]: v for k, v in sections.items() if k.startswith("vision_msgs/")}
    assert set(vision) == {"Detection2D", "ObjectHypothesisWithPose", "ObjectHypothesis",
                           "BoundingBox2D", "Pose2D", "Point2D"}
    for stem, lines in vision.items():
        ours = (B.STANDIN_MSG_DIR / f"{stem}.msg").read_text().splitlines()
        assert _fields(lines) == _fields(ours), stem


def _fields(lines) -> list[tuple[str, str]]:
    """(type without its package, name) of each field line; comments and blanks dropped.
    Stored definitions spell same-package types in full (vision_msgs/Pose2D)."""
    out = []
    for ln in lines:
        ln = ln.split("#")[0].strip()
        if ln:
            typ, name = ln.split()[:2]
            out.append((typ.split("/")[-1], name))
    return out


def test_16bit_thermal_is_mono16_counts(seq_dirs, tmp_path):
    from ckd_core.data.sequences import open_sequence
    seq = open_sequence("vtuav", seq_dirs["vtuav16"])
    bag = B.from_sequence(seq_dirs["vtuav16"], tmp_path / "b16", max_frames=3, progress=False)
    (_, msg), *_ = _messages(bag, B.THERMAL_TOPIC)
    raw = cv2.imread(str(seq.thermal_frames[0]), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and msg.encoding == "mono16" and msg.step == 2 * W
    np.testing.assert_array_equal(np.frombuffer(msg.data.tobytes(), "<u2").reshape(H, W), raw)
    assert B.read_index(bag).custom["thermal_encoding"] == "mono16"


def test_compressed_sqlite_lasher(seq_dirs, tmp_path):
    d = seq_dirs["lasher"]
    assert B.detect_dataset(d) == "lasher" and B.detect_dataset(seq_dirs["vtuav"]) == "vtuav"
    bag = B.from_sequence(d, tmp_path / "c", storage="sqlite3", compressed=True,
                          max_frames=5, progress=False)
    assert list(bag.glob("*.db3"))
    index = B.read_index(bag)
    assert index.storage == "sqlite3" and index.compressed == (True, True)
    assert index.rgb_topic == B.RGB_TOPIC + "/compressed"
    np.testing.assert_array_equal(index.gt.frame_ids, np.arange(5))  # dense GT
    (_, rgb), *_ = _messages(bag, index.rgb_topic)
    (_, th), *_ = _messages(bag, index.thermal_topic)
    assert rgb.format == "rgb8; jpeg compressed bgr8" and th.format == "mono8; jpeg compressed mono8"
    assert rgb.data.tobytes() == (d / "visible" / "v000000.jpg").read_bytes()
    with pytest.raises(B.BagError, match="exists already"):
        B.from_sequence(d, bag, progress=False)


# ---------------------------------------------------------------------------------------------
# CLI without the ROS environment
# ---------------------------------------------------------------------------------------------

def _env_without_ros() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "LD_LIBRARY_PATH"):
        parts = [p for p in env.get(var, "").split(os.pathsep) if p and ".ros_ws" not in p]
        env[var] = os.pathsep.join(parts)
    return env


def test_cli_from_sequence_works_without_ros(seq_dirs, tmp_path):
    env = _env_without_ros()
    probe = subprocess.run([sys.executable, "-c", "import vision_msgs.msg"], env=env,
                           capture_output=True)
    assert probe.returncode != 0  # really no ROS interfaces here
    bag = tmp_path / "cli_bag"
    cmd = [sys.executable, "-m", "ckd_core.cli", "bag"]
    run = subprocess.run(cmd + ["from-sequence", str(seq_dirs["vtuav"]), "--out", str(bag),
                                "--thermal-offset", "0.01", "--max-frames", "12"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "/camera/rgb/image_raw" in run.stdout and "gt_frame_step=10" in run.stdout
    assert (bag / "metadata.yaml").is_file()
    ev = subprocess.run(cmd + ["eval", str(bag)], env=env, capture_output=True, text=True,
                        timeout=60)
    assert ev.returncode == 2 and "needs the ROS environment" in ev.stderr
    assert "scripts/with_env.sh" in ev.stderr


# ---------------------------------------------------------------------------------------------
# Bag -> node -> scores (real rclpy, loopback DDS)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ros(request):
    """The conftest's rclpy context, or a skip with the reason when ROS is not usable."""
    reason = ros_unavailable()
    if reason:
        pytest.skip(reason)
    return request.getfixturevalue("ros_context")


def _offline(seq_dir, checkpoint, n, **tracker_changes):
    """(rows by the bag-eval rule, [(TrackResult or None)]) of the offline Tracker."""
    from ckd_core.data.sequences import open_sequence
    from ckd_core.tracking import Tracker, TrackState
    tracker = Tracker.from_checkpoint(checkpoint, device="cpu")
    if tracker_changes:
        tracker = Tracker.from_checkpoint(checkpoint, device="cpu", tracker_config=(
            dataclasses.replace(tracker.cfg, **tracker_changes)))
    seq = open_sequence("vtuav", seq_dir)
    rows = np.empty((n, 4))
    rows[0] = seq.gt_rgb[0]
    tracker.init(*seq.frame(0), tuple(seq.gt_rgb[0]))
    results = [None]
    for i in range(1, n):
        res = tracker.update(*seq.frame(i))
        results.append(res)
        rows[i] = _as_published(res.box_xywh) if res.state == TrackState.TRACKING \
            else rows[i - 1]
    return rows, results


def _as_published(box):
    """A box after the trip through Detection2D (centre + size) and back to a corner, the
    float operations of detections.detection_from_box and bag_eval, in that order."""
    x, y, w, h = box
    return (x + 0.5 * w) - 0.5 * w, (y + 0.5 * h) - 0.5 * h, w, h


def _check_against_offline(result, rows, offline):
    from ckd_core.tracking import TrackState
    assert all(r.answered for r in result.records) and not result.report["aborted"]
    for rec, res in zip(result.records[1:], offline[1:]):
        if res.state == TrackState.TRACKING:
            x, y, w, h = res.box_xywh
            assert rec.detection == (x + 0.5 * w, y + 0.5 * h, w, h), rec.index  # bit-exact
            assert rec.score == float(res.score)
        else:
            assert rec.detection is None, rec.index
    np.testing.assert_array_equal(result.boxes, rows)


def test_eval_lockstep_equals_offline_tracker(ros, vtuav_bag, seq_dirs, tiny_checkpoint,
                                              tmp_path):
    from ckd_core.evaluation.results_io import read_result_file
    from ckd_tracker_ros.bag_eval import eval_bag, node_parameters, score_boxes
    path, tracker_cfg = tiny_checkpoint
    index = B.read_index(vtuav_bag)
    params = node_parameters(index, path, "cpu", None)
    # The node must track as the offline Tracker does: the checkpoint's thresholds.
    assert (params["lost_threshold"], params["recover_threshold"],
            params["reference_camera"]) == (tracker_cfg.lost_threshold,
                                            tracker_cfg.recover_threshold,
                                            tracker_cfg.reference_camera)
    result = eval_bag(vtuav_bag, checkpoint=path, out_dir=tmp_path / "ev", context=ros,
                      progress=False, log=lambda s: None)
    rows, offline = _offline(seq_dirs["vtuav"], path, FRAMES)
    _check_against_offline(result, rows, offline)

    r = result.report
    assert r["node_parameters"]["lost_threshold"] == tracker_cfg.lost_threshold
    # Lock-step: no camera is ever silent, however long a pair takes (up to the time-out).
    assert "silent_after" not in params
    assert node_parameters(index, path, "cpu", None, 60.0)["silent_after"] == 60.0
    assert r["node_parameters"]["silent_after"] == 60.0  # eval_bag's default timeout_s
    assert r["frames"]["answered"] == FRAMES and r["frames"]["unanswered"] == 0
    assert r["node_counters"]["frames_processed"] == FRAMES
    # Lock-step drops nothing, except that a pair re-sent because its answer was late (a
    # loaded machine) can replace its own first copy before the node took it.
    assert r["node_counters"]["pairs_dropped"] <= r["frames"]["resends"], r["frames"]
    assert r["scored_frames"] == 3 and r["scored_as"] == "vtuav"  # frames 0, 10, 20
    assert r["latency_ms"]["node"]["n"] == FRAMES - 1 and r["latency_ms"]["round_trip"]["p50"] > 0
    offline_score = score_boxes(index, rows)
    assert r["scores"] == offline_score.headline
    assert set(r["scores"]) == {"MPR", "MSR", "PR_RGB", "SR_RGB"}
    np.testing.assert_array_equal(read_result_file(result.files["results"]), rows)
    assert json.loads(result.files["report_json"].read_text())["scores"] == r["scores"]
    assert "| MPR |" in result.files["report_md"].read_text()


def test_eval_16bit_thermal_equals_offline_tracker(ros, seq_dirs, tiny_checkpoint, tmp_path):
    """mono16 thermal through the node (a WindowedFrame: mapped only where the tracker reads
    it) with the sequence's own fixed window tracks exactly as the offline Tracker on the
    same 16-bit files mapped whole by the sequence reader."""
    from ckd_core.data.sequences import open_sequence
    from ckd_tracker_ros.bag_eval import eval_bag
    path, _ = tiny_checkpoint
    n = 10
    window = open_sequence("vtuav", seq_dirs["vtuav16"]).thermal_window
    assert window is not None
    bag = B.from_sequence(seq_dirs["vtuav16"], tmp_path / "b16", max_frames=n,
                          progress=False)
    assert B.read_index(bag).custom["thermal_encoding"] == "mono16"
    result = eval_bag(bag, checkpoint=path, out_dir=tmp_path / "ev", context=ros,
                      params={"thermal_normalization": "fixed",
                              "thermal_window": [float(v) for v in window]},
                      progress=False, log=lambda s: None)
    rows, offline = _offline(seq_dirs["vtuav16"], path, n)
    _check_against_offline(result, rows, offline)


def test_eval_compressed_with_lost_frames(ros, seq_dirs, tiny_checkpoint, tmp_path):
    """CompressedImage input, and thresholds that make the tracker go LOST: empty arrays
    repeat the previous row, as the offline rows with the same thresholds."""
    from ckd_tracker_ros.bag_eval import eval_bag
    path, _ = tiny_checkpoint
    n = 12
    bag = B.from_sequence(seq_dirs["vtuav"], tmp_path / "cb", compressed=True, max_frames=n,
                          thermal_offset_s=-0.005, progress=False)
    change = {"lost_threshold": 0.6, "recover_threshold": 0.62}
    result = eval_bag(bag, checkpoint=path, out_dir=tmp_path / "ev", context=ros,
                      params=change, progress=False, log=lambda s: None)
    rows, offline = _offline(seq_dirs["vtuav"], path, n, **change)
    _check_against_offline(result, rows, offline)
    assert result.report["node_parameters"]["rgb_compressed"] is True


def test_eval_realtime_and_overlay(ros, vtuav_bag, tiny_checkpoint, tmp_path):
    from ckd_tracker_ros.bag_eval import eval_bag
    path, _ = tiny_checkpoint
    result = eval_bag(vtuav_bag, checkpoint=path, out_dir=tmp_path / "rt", context=ros,
                      lockstep=False, rate=2.0, max_frames=10, overlay=True, progress=False,
                      log=lambda s: None)
    assert result.report["mode"] == "realtime x2.0" and result.boxes.shape == (10, 4)
    assert 1 <= result.report["frames"]["answered"] <= 10
    out = result.files["overlay"]
    assert out.exists()
    if out.is_file():
        cap = cv2.VideoCapture(str(out))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
        cap.release()


def test_play_lockstep_into_a_running_node(ros, vtuav_bag):
    """`play` on its own: the node (fake tracker) is started by someone else; every pair is
    answered (IDLE: empty arrays) before the next one is sent."""
    from rclpy.parameter import Parameter

    from ckd_tracker_ros.bag_play import play
    from ckd_tracker_ros.node import TrackerNode
    from ros_fakes import FakeTracker
    from ros_helpers import spinning
    node = TrackerNode(tracker_factory=lambda s: FakeTracker(), namespace="/play_test",
                       context=ros, parameter_overrides=[Parameter("slop", value=0.03)])
    try:
        with spinning(ros, node):
            result = play(vtuav_bag, lockstep=True, node="/play_test/ckd_tracker",
                          remap={B.RGB_TOPIC: "/play_test/rgb/image",
                                 B.THERMAL_TOPIC: "/play_test/thermal/image"},
                          start=2, stop=9, timeout_s=20, context=ros, progress=False,
                          log=lambda s: None)
    finally:
        node.destroy_node()
    assert [r.index for r in result.records] == list(range(2, 9))
    assert all(r.answered and r.detection is None and r.state == 0 for r in result.records)
    assert result.messages_published >= 14 and not result.aborted


def test_demo_small(ros, tmp_path, capsys):
    """`make demo` end to end, shortened: every step runs and writes its outputs."""
    from ckd_tracker_ros import demo
    assert demo.main(["--out", str(tmp_path / "demo"), "--frames", "12"]) == 0
    out = capsys.readouterr().out
    assert "4/4 results" in out and "MPR" in out and "latency (node)" in out
    report = json.loads((tmp_path / "demo" / "eval" / "report.json").read_text())
    assert report["frames"]["answered"] == 12 and report["scored_frames"] == 2
    assert Path(report["files"]["overlay"]).exists()
